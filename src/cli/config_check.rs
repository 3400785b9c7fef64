//! `airlock config check FILE`

use std::path::Path;
use std::process::ExitCode;

use super::Failure;
use crate::config::{Config, Overrides};

pub fn check(file: &Path, base: &Overrides) -> Result<ExitCode, Failure> {
    Config::load(Some(file), base)?;
    println!("{}: OK", file.display());
    Ok(ExitCode::SUCCESS)
}
