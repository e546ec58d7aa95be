//! The LogQL-style query language: lexer, parser, templates.

pub(crate) mod ast;
pub(crate) mod lexer;
pub(crate) mod parser;
pub(crate) mod template;
