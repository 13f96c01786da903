//! What the operator's heavy test tiers (cluster, gitops, node) and the scale bench share, one job per
//! module: [`process`] supervision, the [`pki`], the [`control_plane`], [`files`] and ports, the one
//! Predictor builder ([`manifests`]), the operator's [`rbac`] rules, where a built helper is ([`program`]), kstatus' verdicts ([`kstatus`]), a real [`registry`], a real S3 store
//! ([`seaweedfs`]), and [`wait`]s. The outside services start through the dev/ launchers the dev
//! scripts run too ([`launcher`]). The loopback model store and HTTP GET are `model_store::testing`'s.
// Each test binary (and the bench) uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod argocd;
pub mod argocd_cli;
pub mod control_plane;
pub mod files;
pub mod git;
pub mod kstatus;
pub mod manifests;
pub mod pki;
pub mod process;
pub mod program;
pub mod rbac;
pub mod registry;
pub mod seaweedfs;
pub mod wait;

pub use control_plane::*;
pub use files::*;
pub use process::*;
