//! I/O: the reactor inside the loop (TCP and UDP come with the I/O issue).
pub(crate) mod reactor;
pub use reactor::Direction;
