//! `orchestr8 db`: the shared PostgreSQL database several nodes keep
//! their executions in.

use clap::{Args, Subcommand};
use orchestr8_host::store::migrate_database;
use serde_json::json;

use crate::error::{Failure, Outcome, exit};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Bring the database's schema up to date (every node also does so as
    /// it starts; this lets a deployment do it first, once).
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The database: postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(
        long = "store",
        value_name = "URL",
        env = "ORCHESTR8_DATABASE_URL",
        hide_env_values = true
    )]
    database: String,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DbCommand) -> Outcome {
    match command {
        DbCommand::Migrate(args) => migrate(&args),
    }
}

fn migrate(args: &MigrateArgs) -> Outcome {
    let (applied, version) =
        migrate_database(&args.database).map_err(|e| Failure::of(&e, exit::FAILED))?;
    if args.json {
        println!("{}", json!({ "applied": applied, "version": version }));
    } else if applied.is_empty() {
        println!("the database is up to date (schema version {version})");
    } else {
        let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!(
            "applied migration(s) {}: the database is at schema version {version}",
            list.join(", ")
        );
    }
    Ok(exit::OK)
}
