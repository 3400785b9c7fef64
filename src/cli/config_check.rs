//! `airlock config check FILE`

use std::path::Path;
use std::process::ExitCode;

use super::Failure;
use crate::config::{Config, Overrides};

pub fn check(file: &Path, base: &Overrides) -> Result<ExitCode, Failure> {
    let config = Config::load(Some(file), base)?;
    // The CEL rules and the rule ids are judged by the engines that run them.
    crate::pipeline::live::check(&config)?;
    println!("{}: OK", file.display());
    Ok(ExitCode::SUCCESS)
}
