//! Counts what each client address holds (open connections, runner handshakes in
//! progress) against a limit, so that no one address can take everything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Runner sockets one address may have between upgrade and `hello`. A whole rack of
/// runners behind one NAT reconnecting at once stays well under it.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 64;

/// Counts by address, each at most `limit`.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One unit held by an address; given back when dropped.
#[derive(Debug)]
pub struct Held {
    owner: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// Counts with at most `limit` per address.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: Mutex::default(),
        })
    }

    /// Takes one unit for `address`, or `None` if it holds `limit` already.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(address).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Held {
            owner: Arc::clone(self),
            address,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_counted_per_address_and_given_back_on_drop() {
        let counts = PerAddress::new(3);
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| counts.take(address).unwrap()).collect();
        assert!(counts.take(address).is_none());
        assert!(counts.take("10.0.0.2".parse().unwrap()).is_some());
        drop(held);
        assert!(counts.take(address).is_some());
    }
}
