//! Sets SLUICE_VERSION for `--version` (scripts/build-version.rs).
include!("../scripts/build-version.rs");
