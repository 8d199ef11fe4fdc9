//! Parameter sweeps over policy grids with replications.

pub mod grid;
