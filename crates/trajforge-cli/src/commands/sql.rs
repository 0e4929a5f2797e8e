//! `trajforge sql [--data DIR]... [QUERY]`: SQL over runs and datasets (see `trajforge-sql`).
//! With a query (or `--file`), runs it (several `;`-separated statements run in order, the last one's result
//! is printed); without, opens a REPL: history, statements spanning lines until `;`, `\d` to list
//! tables, `\d NAME` for a schema, `\q` to quit.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
use rustyline::error::ReadlineError;
use trajforge_sql::catalog::Catalog;
use trajforge_sql::output::{Format, ResultWriter, drain, write_result};

use crate::Global;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A run, ingest or dataset directory (repeatable; each gets its own schema when several).
    #[arg(long, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// The SQL to run; without it (and without --file), an interactive prompt opens.
    #[arg(allow_hyphen_values = true, conflicts_with = "file")]
    query: Option<String>,
    /// Run the SQL in this file (e.g. one of `queries/*.sql`).
    #[arg(long, short, value_name = "FILE")]
    file: Option<PathBuf>,
    /// table, csv, json (one object per line) or parquet (needs --output).
    #[arg(long, default_value = "table")]
    format: String,
    /// Write the result to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Register `tokenize(messages, tools, scaffold)` with the bundled Qwen2.5-Coder tokenizer.
    #[arg(long)]
    tokenize: bool,
    /// Register `tokenize(…)` with this Hugging Face tokenizer folder instead.
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// Longest cell shown by the table format, in characters (0: no limit).
    #[arg(long, default_value_t = 60, value_name = "N")]
    max_width: usize,
}

pub fn run(args: Args, global: Global, threads: usize) -> Result<()> {
    let format = Format::parse(&args.format)?;
    if format == Format::Parquet && args.output.is_none() {
        bail!("--format parquet writes a file: give --output FILE.parquet");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .build()
        .context("cannot start the runtime")?;
    let query = match &args.file {
        Some(f) => Some(
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        ),
        None => args.query.clone(),
    };
    rt.block_on(async {
        let (ctx, catalog) = trajforge_sql::session(&args.data, threads).await?;
        if args.tokenize || args.tokenizer.is_some() {
            trajforge_sql::functions::register_tokenize(&ctx, args.tokenizer.as_deref())?;
        }
        match &query {
            Some(q) if q.trim_start().starts_with('\\') => {
                meta(&ctx, q.trim(), &args, format).await
            }
            Some(q) => run_query(&ctx, q, &args, format).await,
            None => repl(&ctx, &catalog, &args, format, global).await,
        }
    })
}

/// Runs every statement of `sql`; streams the last one's result to the output.
async fn run_query(ctx: &SessionContext, sql: &str, args: &Args, format: Format) -> Result<()> {
    let statements = split_statements(sql);
    let Some((last, before)) = statements.split_last() else {
        bail!("no SQL statement given");
    };
    for s in before {
        let df = ctx.sql(s).await.with_context(|| format!("in: {s}"))?;
        drain(df).await.with_context(|| format!("in: {s}"))?;
    }
    let df = ctx.sql(last).await.with_context(|| format!("in: {last}"))?;
    let schema = df.schema().inner().clone();
    let out = ResultWriter::create(&schema, format, args.output.as_deref(), args.max_width)?;
    write_result(df, out)
        .await
        .with_context(|| format!("in: {last}"))?;
    Ok(())
}

/// `sql` cut at its `;` tokens, read by sqlparser's tokenizer (the one DataFusion parses with), so
/// a `;` inside a string, a quoted name, a `--` or `/* */` comment or a dollar-quoted body never
/// ends a statement.
struct Scan {
    statements: Vec<String>,
    /// Text after the last `;` (only whitespace and comments when the text ends with a statement).
    rest: String,
    /// The text ends inside a string, a quoted name or a comment.
    open: bool,
}

fn scan(sql: &str) -> Scan {
    let dialect = GenericDialect {};
    let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        // The tokenizer fails on what it cannot close: the text is one unfinished statement,
        // and DataFusion's parser reports it with its own message when it is run.
        Err(_) => {
            return Scan {
                statements: Vec::new(),
                rest: sql.to_string(),
                open: true,
            };
        }
    };
    let offsets = LineOffsets::new(sql);
    let mut statements = Vec::new();
    // Where the current statement's first token that is not whitespace or a comment starts.
    let mut first: Option<usize> = None;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let end = offsets.byte(t.span.start);
                if let Some(start) = first.take() {
                    statements.push(sql[start..end].trim().to_string());
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                first.get_or_insert_with(|| offsets.byte(t.span.start));
            }
        }
    }
    Scan {
        statements,
        rest: first.map_or_else(String::new, |start| sql[start..].to_string()),
        open: false,
    }
}

/// Byte offsets of a text's lines, to turn the tokenizer's (line, column in characters) into a
/// byte offset.
struct LineOffsets<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    fn byte(&self, at: Location) -> usize {
        let line = usize::try_from(at.line.saturating_sub(1)).unwrap_or(usize::MAX);
        let column = usize::try_from(at.column.saturating_sub(1)).unwrap_or(usize::MAX);
        let Some(&line_start) = self.starts.get(line) else {
            return self.text.len();
        };
        self.text[line_start..]
            .char_indices()
            .nth(column)
            .map_or(self.text.len(), |(i, _)| line_start + i)
    }
}

/// Statements separated by `;` outside strings and comments (the last may lack its `;`).
fn split_statements(sql: &str) -> Vec<String> {
    let mut s = scan(sql);
    if !s.rest.trim().is_empty() {
        s.statements.push(s.rest.trim().to_string());
    }
    s.statements
}

/// True when `buffer` ends with a complete statement (its `;` outside strings and comments).
fn complete(buffer: &str) -> bool {
    let s = scan(buffer);
    !s.open && s.rest.is_empty() && !s.statements.is_empty()
}

async fn repl(
    ctx: &SessionContext,
    catalog: &Catalog,
    args: &Args,
    format: Format,
    global: Global,
) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("cannot open the terminal")?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".trajforge_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if !global.quiet {
        eprintln!("{}", describe(catalog));
        eprintln!("End statements with ;  \\d lists tables, \\d NAME shows one, \\q quits.");
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sql> " } else { "...> " };
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading the prompt"),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            if trimmed == "\\q" {
                break;
            }
            if let Err(e) = meta(ctx, trimmed, args, format).await {
                eprintln!("error: {}", crate::error_line(&e));
            }
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !complete(&buffer) {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        if let Err(e) = run_query(ctx, &buffer, args, format).await {
            eprintln!("error: {}", crate::error_line(&e));
        }
        buffer.clear();
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// `\d` and `\d NAME`.
async fn meta(ctx: &SessionContext, command: &str, args: &Args, format: Format) -> Result<()> {
    let mut words = command.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\d"), None) => {
            let sql = "SELECT table_schema, table_name, table_type FROM information_schema.tables \
                       WHERE table_schema <> 'information_schema' ORDER BY 1, 2";
            run_query(ctx, sql, args, format).await
        }
        (Some("\\d"), Some(name)) => {
            let (schema, table) = name.split_once('.').unwrap_or(("public", name));
            let sql = format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_schema = '{}' AND table_name = '{}' ORDER BY ordinal_position",
                schema.replace('\'', "''"),
                table.replace('\'', "''")
            );
            run_query(ctx, &sql, args, format).await
        }
        _ => bail!("unknown command {command} (\\d, \\d NAME, \\q)"),
    }
}

/// One line per directory: its schema and tables.
fn describe(catalog: &Catalog) -> String {
    let mut lines = Vec::new();
    for d in &catalog.dirs {
        let tables: Vec<String> = d
            .tables
            .iter()
            .map(|(t, _)| catalog.qualified(&d.schema, t))
            .collect();
        lines.push(format!("{}: {}", d.path.display(), tables.join(", ")));
    }
    if !catalog.run_tables.is_empty() {
        lines.push(format!("manifests: {}", catalog.run_tables.join(", ")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_semicolons_outside_strings_and_comments() {
        let sql = "SELECT ';' AS a; -- a comment; with a semicolon\nSELECT \"x;y\" FROM t ;  ";
        assert_eq!(
            split_statements(sql),
            ["SELECT ';' AS a", "SELECT \"x;y\" FROM t"]
        );
        let block = "SELECT 1 /* one; two */ AS n;\nSELECT 'it''s; fine', 'é;' /* ; */;";
        assert_eq!(
            split_statements(block),
            [
                "SELECT 1 /* one; two */ AS n",
                "SELECT 'it''s; fine', 'é;' /* ; */"
            ]
        );
        assert_eq!(split_statements("SELECT 1; -- done\n"), ["SELECT 1"]);
        assert_eq!(split_statements("SELECT 2"), ["SELECT 2"]);
    }

    #[test]
    fn a_statement_is_complete_only_at_a_semicolon_outside_strings_and_comments() {
        assert!(complete("SELECT 1;\n"));
        assert!(complete("SELECT 1; -- trailing comment\n"));
        assert!(!complete("SELECT ';\n"));
        assert!(!complete("SELECT 1\n"));
        assert!(!complete("SELECT 1 /* still ; open\n"));
        assert!(complete("SELECT 1 /* closed ; */ ;\n"));
        assert!(!complete("-- only a comment;\n"));
    }
}
