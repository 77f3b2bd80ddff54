//! scangate: a container-image security gate for AWS CodePipeline.
//!
//! Modules follow the data flow of one job:
//! `job` (claim, configuration, result) → `image` (registry pull, layers,
//! whiteouts) → `catalog` (packages per ecosystem) → `sbom` (CycloneDX 1.5)
//! → `inspector` (ScanSbom, findings) → `policy` (verdict) → `report`.
//! `worker` runs the poll loop that drives jobs; `pipeline` is the one
//! function that takes an image reference to a verdict, shared by the worker
//! and the CLI.

pub mod cancel;
pub mod catalog;
pub mod demo;
/// Entry points of the fuzz targets in fuzz/ and the replay of their corpora.
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod inspector;
pub mod job;
pub mod jobs;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod risks;
pub mod sbom;
pub mod signature;
pub mod util;
pub mod worker;
