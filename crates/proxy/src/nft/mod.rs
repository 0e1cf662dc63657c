//! The nftables data plane: one table per address family, owned by Portico, changed by one
//! atomic `nft -f` transaction per sync. See [`render`] for the layout and [`state`] for how
//! partial syncs are computed.

pub mod apply;
pub mod render;
pub mod state;

#[cfg(test)]
mod tests;
