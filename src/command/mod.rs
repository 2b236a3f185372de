//! Chat text -> typed commands, and the grammar they follow: the operations' rows in the
//! [`Catalog`] and the built-in commands.

mod catalog;
pub mod grammar;
pub mod ids;
mod parse;
pub mod suggest;
mod target;
pub mod text;

pub use catalog::Catalog;
pub use grammar::{
    builtin_by_verb, Builtin, BuiltinDef, Lock, Modes, OperationDef, Param, BUILTINS,
};
pub use parse::{
    parse, quote, reason_text, usage_of, Command, OperationRequest, ParseError, MAX_INPUT,
};
pub use target::Target;
