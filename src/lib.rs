//! routevpn: route-based IPsec tunnels from declarative profiles.
//!
//! Data flows one way: [`profile`] files are parsed and validated into the [`model`], the
//! [`plan`] turns the model into the desired kernel state (pure), and the dataplane applies
//! it. The IKE engine in [`ike`] negotiates SAs for the children the plan describes.

pub mod apply;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod file;
pub mod ike;
pub mod model;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod proposal;
pub mod swanctl;
pub mod vici;
