//! WebSocket close codes the control plane uses to end a runner session.

/// Why the control plane closed a runner's socket. The reason text says more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// The runner speaks a protocol version the control plane does not. Do not retry.
    UnsupportedProtocol = 4001,
    /// The first frame was not a valid `hello`, or came too late.
    BadHandshake = 4002,
    /// A newer connection of the same runner replaced this one.
    Superseded = 4003,
    /// The runner's token was revoked. Do not retry.
    Revoked = 4004,
    /// No heartbeat arrived within the heartbeat timeout.
    HeartbeatTimeout = 4005,
    /// The control plane is shutting down; reconnect with backoff.
    ServerShutdown = 4006,
}

impl CloseCode {
    /// Every code, for tests and docs.
    pub const ALL: [CloseCode; 6] = [
        CloseCode::UnsupportedProtocol,
        CloseCode::BadHandshake,
        CloseCode::Superseded,
        CloseCode::Revoked,
        CloseCode::HeartbeatTimeout,
        CloseCode::ServerShutdown,
    ];

    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Reads a code received in a close frame.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// True when the runner must stop rather than reconnect.
    pub fn is_fatal(self) -> bool {
        matches!(self, CloseCode::UnsupportedProtocol | CloseCode::Revoked)
    }
}
