//! Caps runner handshakes in progress per address: a client that opens many sockets and
//! never says hello cannot tie up the control plane.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Runner sockets one address may have between upgrade and `hello`. A whole rack of
/// runners behind one NAT reconnecting at once stays well under it.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 64;

/// Handshakes in progress, by address.
#[derive(Debug, Default)]
pub struct Handshakes {
    in_progress: Mutex<HashMap<IpAddr, usize>>,
}

/// One handshake in progress; ends when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    owner: Arc<Handshakes>,
    address: IpAddr,
}

impl Handshakes {
    /// Starts a handshake from `address`, or `None` if it has too many in progress.
    pub fn begin(self: &Arc<Self>, address: IpAddr) -> Option<HandshakeSlot> {
        let mut in_progress = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_progress.entry(address).or_default();
        if *count >= MAX_HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(HandshakeSlot {
            owner: Arc::clone(self),
            address,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut in_progress = self
            .owner
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_progress.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                in_progress.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_freed_on_drop() {
        let handshakes = Arc::new(Handshakes::default());
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..MAX_HANDSHAKES_PER_ADDRESS)
            .map(|_| handshakes.begin(address).unwrap())
            .collect();
        assert!(handshakes.begin(address).is_none());
        assert!(handshakes.begin("10.0.0.2".parse().unwrap()).is_some());
        drop(slots);
        assert!(handshakes.begin(address).is_some());
    }
}
