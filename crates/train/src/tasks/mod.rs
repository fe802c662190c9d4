//! The tasks: interpolation (`scattered`) and prototype classification (`prototype`), with their
//! data generators and classical baselines.

pub mod franke;
pub mod moons;
pub mod prototype;
pub mod scattered;
pub mod shepard;
