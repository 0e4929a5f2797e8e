//! pipeline (in progress)
pub mod de;
pub mod yaml;
