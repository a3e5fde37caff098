//! The end-to-end suite of Portcullis lives in `e2e/main.rs` and its modules; this library is
//! empty and exists so the package has a home for the suite.
