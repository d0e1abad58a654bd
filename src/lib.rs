//! shadowcut: triggerless online schema change for MySQL and MariaDB.
//!
//! The data flow, one module per stage:
//! [`inspect`] → [`shadow`] → [`tail`] → [`copy`] → [`index_build`] →
//! [`cutover`], with [`apply`] turning tailed changes into statements,
//! [`feed`] carrying them from the tail to the applier, [`checksum`] proving
//! the new table before the swap, [`instant`] asking the server whether
//! the ALTER can run natively instead (and running it so on request),
//! [`plans`] comparing the application's query plans before the swap,
//! [`resume`] continuing a killed run from its recorded checkpoint,
//! [`control`], [`throttle`], [`hooks`], [`progress`] and [`output`] beside
//! them, and
//! [`migration`] running the stages in order.

pub mod apply;
pub mod checksum;
pub mod cli;
pub mod control;
pub mod copy;
pub mod cutover;
pub mod error;
pub mod failpoint;
pub mod feed;
pub mod hooks;
pub mod index_build;
pub mod inspect;
pub mod instant;
pub mod migration;
pub mod option_file;
pub mod output;
pub mod plans;
pub mod progress;
pub mod resume;
pub mod schema;
pub mod server;
pub mod shadow;
pub mod sql;
pub mod table_lock;
pub mod tail;
pub mod throttle;

pub use error::{Error, ExitCode, Result};
pub use migration::{run, Config, Summary};
