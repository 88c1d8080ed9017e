//! `tenantctl token hash`: the SHA-256 of a token, for the API's token list.

use std::io::Read;

use anyhow::{anyhow, Context};
use clap::Subcommand;

use super::Failure;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Read a token from stdin and print its SHA-256 (hex) for a tokens file entry.
    /// The token itself is never printed.
    Hash,
}

pub fn run(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Hash => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the token from stdin")?;
            let token = input.trim_end_matches(['\n', '\r']);
            if token.trim().is_empty() {
                return Err(Failure {
                    code: 2,
                    error: anyhow!("no token on stdin; e.g. `openssl rand -hex 32 | tee token.txt | tenantctl token hash`"),
                });
            }
            println!("{}", tenant_orchestrator::api::token_hash(token));
            Ok(())
        }
    }
}
