//! The template sandbox: what a campaign's Tera templates may reach, and how much work one render
//! may do.
//!
//! Templates are written by marketers, not by the people who run the server, so a template must
//! not be a way to read the server's secrets or files, nor to keep a core busy. Tera's defaults
//! are made for trusted templates: `get_env` reads the process environment (where
//! `OPENTIME_SECRET` lives), `now()` and `get_random()` make the picture depend on something the
//! render cache key does not hold (the key holds `now` rounded to the block's `time_bucket`, see
//! `open/input.rs`), and `range` hands out arrays of any length. So every Tera this crate builds
//! for templates comes from [`new_tera`], where:
//!
//! - `get_env`, `now` and `get_random` are replaced by functions that fail with a message saying
//!   why, and [`check_template`] refuses, **when the campaign loads** (`file:line`), any call of
//!   a function other than `range`, `throw` and the text functions (`text_lines`, `fit_size`,
//!   `text_width`: pure measurements with the renderer's fonts, `super::text_functions`) — so a
//!   template using them never goes live. The `now` *variable* the render passes in stays
//!   available.
//! - `range` and the output are bounded (`crate::template_bounds`, shared with countdown frames).
//!   Loops over context arrays are bounded by what the ingest API accepts (its body limits),
//!   not here.
//! - `{% include %}`, `{% import %}` and `{% extends %}` name templates, never files: Tera looks
//!   a name up among the templates the campaign loaded (the template files directly in its
//!   folder), so `"/etc/hostname"` or `"../other/x.svg"` cannot reach a file. [`check_template`]
//!   refuses such names at load time anyway, with `file:line`, instead of an error at render.
//!
//! Every path a manifest names (templates, fallbacks, suppressed and expired images) goes through
//! [`campaign_file`]: relative, without `..`, and not a symbolic link leading out of the campaign
//! folder.
//!
//! Errors raised by a limit start with [`LIMIT`] (`template-limit:`), so they are easy to tell
//! from a template's own mistakes in logs and in `opentime check`'s output.

use crate::render::text_layout::Typesetter;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tera::ast::{Expr, ExprVal, Node};
use tera::{Tera, Value};

use crate::template_bounds::range;
pub(crate) use crate::template_bounds::{render, RenderFailure};

/// Tera's functions that read something besides the render's inputs.
const WITHHELD: [&str; 3] = ["get_env", "now", "get_random"];

/// The functions any template may call.
pub(crate) const OFFERED: [&str; 2] = ["range", "throw"];

/// The functions a campaign's templates may call: those, and the text functions (which
/// measure with the renderer's fonts, so they exist only where a renderer is at hand).
pub(crate) const TEMPLATE_FUNCTIONS: [&str; 5] = [
    OFFERED[0],
    OFFERED[1],
    super::text_functions::NAMES[0],
    super::text_functions::NAMES[1],
    super::text_functions::NAMES[2],
];

/// Why a withheld function is not there, and what to use instead.
fn withheld_reason(name: &str) -> String {
    let instead = match name {
        "get_env" => "never the server's environment",
        "now" => "use the `now` variable (or `now_ts`), rounded to the block's time_bucket",
        _ => "a render depends only on them, so that it can be cached",
    };
    format!(
        "`{name}` is not available in opentime templates: templates see only their inputs \
         (ctx, subscriber, now, now_ts, query, …); {instead}"
    )
}

/// A Tera for templates: Tera's filters and testers, opentime's filters, `range` bounded, and
/// no function that reads the environment, the clock or a random source.
pub(crate) fn new_tera() -> Tera {
    let mut tera = Tera::default();
    for name in WITHHELD {
        tera.register_function(name, move |_: &HashMap<String, Value>| {
            Err(tera::Error::msg(withheld_reason(name)))
        });
    }
    tera.register_function("range", range);
    super::filters::register(&mut tera);
    tera
}

/// [`new_tera`] with the text functions, measuring with `typesetter` (a campaign's templates).
pub(crate) fn new_template_tera(typesetter: &Arc<Typesetter>) -> Tera {
    let mut tera = new_tera();
    super::text_functions::register(&mut tera, typesetter);
    tera
}

/// Something a template uses that the sandbox refuses, at a line of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

/// What a template names: functions it calls, templates it includes, imports or extends.
enum Used<'a> {
    Function(&'a str),
    /// `(namespace, macro)`
    Macro(&'a str, &'a str),
    /// A variable read.
    Ident(&'a str),
    /// `{% set_global NAME = … %}` whose value reads NAME more than once: in a loop it doubles
    /// each time (`s ~ s`, `list | concat(with=list)`), a gigabyte after 30 rounds.
    Doubling(&'a str),
    /// `(tag, name, ignore missing)`
    Template(&'static str, &'a str, bool),
}

/// Checks template `name` (text `source`) at load time: every function it calls is among
/// `offered` ([`OFFERED`], or [`TEMPLATE_FUNCTIONS`] for a campaign's templates), and every
/// template it includes, imports or extends is one of the campaign's (`is_template`). A source
/// that does not parse is left to Tera's own error (it names line and column).
pub(crate) fn check_template(
    name: &str,
    source: &str,
    is_template: impl Fn(&str) -> bool,
    offered: &[&str],
) -> Result<(), Refusal> {
    let Ok(template) = tera::Template::new(name, None, source) else {
        return Ok(());
    };
    let mut used = Vec::new();
    nodes(&template.ast, &mut used);
    for item in used {
        match item {
            Used::Function(function) if !offered.contains(&function) => {
                let reason = if WITHHELD.contains(&function) {
                    withheld_reason(function)
                } else {
                    format!(
                        "`{function}` is not a function opentime templates can call here (they \
                         can call {})",
                        offered.join(", ")
                    )
                };
                return Err(Refusal {
                    line: line_of_call(source, function),
                    reason,
                });
            }
            Used::Template(tag, target, ignore_missing) => {
                let path_like = target.contains(['/', '\\']) || target.starts_with('.');
                if path_like || (!ignore_missing && !is_template(target)) {
                    return Err(Refusal {
                        line: line_of(source, target),
                        reason: format!(
                            "{{% {tag} \"{target}\" %}}: templates can {tag} only the campaign's \
                             own templates, by file name (a template file directly in the \
                             campaign folder)"
                        ),
                    });
                }
            }
            Used::Doubling(name) => {
                return Err(Refusal {
                    line: line_of(source, "set_global"),
                    reason: format!(
                        "set_global {name} reads `{name}` more than once: in a loop it would \
                         double each round; build it from the loop's items instead"
                    ),
                });
            }
            Used::Function(_) | Used::Macro(..) | Used::Ident(_) => {}
        }
    }
    Ok(())
}

/// Checks a campaign's templates (`(file name, source)`) for macros that call themselves,
/// directly or through other macros: Tera has no depth limit, so such a call recurses until
/// the thread's stack overflows, which aborts the whole server. Refused at load with the file
/// and line of the macro that closes the cycle. Sources that do not parse are left to Tera.
pub(crate) fn check_macro_recursion(sources: &[(String, String)]) -> Result<(), (String, Refusal)> {
    type MacroId = (String, String);
    let parsed: Vec<(&str, &str, tera::Template)> = sources
        .iter()
        .filter_map(|(name, text)| {
            let template = tera::Template::new(name, None, text).ok()?;
            Some((name.as_str(), text.as_str(), template))
        })
        .collect();
    // Every macro's calls, resolved to (file, macro): `self::` is its own file, a namespace is
    // the file imported under it.
    let mut calls: HashMap<MacroId, Vec<MacroId>> = HashMap::new();
    for (file, _, template) in &parsed {
        for (name, definition) in &template.macros {
            let mut used = Vec::new();
            macro_calls(&definition.body, &mut used);
            let targets = used
                .into_iter()
                .filter_map(|(namespace, called)| {
                    let target = if namespace == "self" {
                        Some(file.to_string())
                    } else {
                        template
                            .imported_macro_files
                            .iter()
                            .find(|(_, ns)| ns == namespace)
                            .map(|(imported, _)| imported.clone())
                    };
                    target.map(|target| (target, called.to_owned()))
                })
                .collect();
            calls.insert((file.to_string(), name.clone()), targets);
        }
    }
    // Depth-first search for a cycle; `state`: absent = unseen, false = on the path, true = done.
    fn visit(
        node: &MacroId,
        calls: &HashMap<MacroId, Vec<MacroId>>,
        state: &mut HashMap<MacroId, bool>,
    ) -> Option<MacroId> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => return Some(node.clone()),
            None => {}
        }
        state.insert(node.clone(), false);
        for next in calls.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, calls, state) {
                return Some(cycle);
            }
        }
        state.insert(node.clone(), true);
        None
    }
    let mut state = HashMap::new();
    let mut roots: Vec<&MacroId> = calls.keys().collect();
    roots.sort();
    for root in roots {
        if let Some((file, name)) = visit(root, &calls, &mut state) {
            let source = parsed
                .iter()
                .find(|(f, _, _)| *f == file)
                .map_or("", |(_, text, _)| *text);
            return Err((
                file.clone(),
                Refusal {
                    line: line_of(source, &format!("macro {name}")),
                    reason: format!(
                        "macro `{name}` calls itself (directly or through other macros): \
                         templates cannot recurse, a render has no depth limit"
                    ),
                },
            ));
        }
    }
    Ok(())
}

/// The `(namespace, macro)` of every macro call in `list`.
fn macro_calls<'a>(list: &'a [Node], found: &mut Vec<(&'a str, &'a str)>) {
    let mut used = Vec::new();
    nodes(list, &mut used);
    found.extend(used.into_iter().filter_map(|item| match item {
        Used::Macro(namespace, name) => Some((namespace, name)),
        _ => None,
    }));
}

/// Whether the identifier `ident` (`s`, `s.len`, `s[0]`) reads the variable `name`.
fn is_variable(ident: &str, name: &str) -> bool {
    ident
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The 1-based line of the first `needle` in `source` (1 when it is not found).
fn line_of(source: &str, needle: &str) -> usize {
    source
        .lines()
        .position(|line| line.contains(needle))
        .map_or(1, |index| index + 1)
}

/// The 1-based line of the first call of `function` (its name followed by `(`).
fn line_of_call(source: &str, function: &str) -> usize {
    source
        .lines()
        .position(|line| {
            line.match_indices(function).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + function.len()..].trim_start();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                    && after.starts_with('(')
            })
        })
        .map_or(1, |index| index + 1)
}

// The walk below matches every node and expression kind exhaustively, so a Tera update that adds
// one fails to compile here instead of slipping past the check.

fn nodes<'a>(list: &'a [Node], used: &mut Vec<Used<'a>>) {
    for node in list {
        match node {
            Node::VariableBlock(_, e) => expr(e, used),
            Node::MacroDefinition(_, definition, _) => {
                definition
                    .args
                    .values()
                    .flatten()
                    .for_each(|e| expr(e, used));
                nodes(&definition.body, used);
            }
            Node::Extends(_, name) => used.push(Used::Template("extends", name, false)),
            Node::Include(_, names, ignore_missing) => {
                for name in names {
                    used.push(Used::Template("include", name, *ignore_missing));
                }
            }
            Node::ImportMacro(_, file, _) => used.push(Used::Template("import", file, false)),
            Node::Set(_, set) => {
                let mut read = Vec::new();
                expr(&set.value, &mut read);
                let reads_itself = read
                    .iter()
                    .filter(|item| matches!(item, Used::Ident(name) if is_variable(name, &set.key)))
                    .count();
                if set.global && reads_itself > 1 {
                    used.push(Used::Doubling(&set.key));
                }
                used.extend(read);
            }
            Node::FilterSection(_, section, _) => {
                section.filter.args.values().for_each(|e| expr(e, used));
                nodes(&section.body, used);
            }
            Node::Block(_, block, _) => nodes(&block.body, used),
            Node::Forloop(_, forloop, _) => {
                expr(&forloop.container, used);
                nodes(&forloop.body, used);
                if let Some(empty) = &forloop.empty_body {
                    nodes(empty, used);
                }
            }
            Node::If(branches, _) => {
                for (_, condition, body) in &branches.conditions {
                    expr(condition, used);
                    nodes(body, used);
                }
                if let Some((_, body)) = &branches.otherwise {
                    nodes(body, used);
                }
            }
            Node::Super
            | Node::Text(_)
            | Node::Raw(..)
            | Node::Break(_)
            | Node::Continue(_)
            | Node::Comment(..) => {}
        }
    }
}

fn expr<'a>(e: &'a Expr, used: &mut Vec<Used<'a>>) {
    value(&e.val, used);
    for filter in &e.filters {
        filter.args.values().for_each(|e| expr(e, used));
    }
}

fn value<'a>(v: &'a ExprVal, used: &mut Vec<Used<'a>>) {
    match v {
        ExprVal::FunctionCall(call) => {
            used.push(Used::Function(&call.name));
            call.args.values().for_each(|e| expr(e, used));
        }
        ExprVal::MacroCall(call) => {
            used.push(Used::Macro(&call.namespace, &call.name));
            call.args.values().for_each(|e| expr(e, used));
        }
        ExprVal::Math(m) => {
            expr(&m.lhs, used);
            expr(&m.rhs, used);
        }
        ExprVal::Logic(l) => {
            expr(&l.lhs, used);
            expr(&l.rhs, used);
        }
        ExprVal::In(i) => {
            expr(&i.lhs, used);
            expr(&i.rhs, used);
        }
        ExprVal::Test(t) => t.args.iter().for_each(|e| expr(e, used)),
        ExprVal::Array(items) => items.iter().for_each(|e| expr(e, used)),
        ExprVal::StringConcat(concat) => concat.values.iter().for_each(|v| value(v, used)),
        ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => {}
        ExprVal::Ident(name) => used.push(Used::Ident(name)),
    }
}

/// `file`, a path a manifest names, as a path inside the campaign folder `dir`: relative, no
/// `..`, and not a symbolic link that leads out of the folder. A file that does not exist is
/// returned as is (reading it reports that, naming the file).
pub(crate) fn campaign_file(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let relative = Path::new(file);
    if file.trim().is_empty() {
        return Err("is empty; name a file inside the campaign folder".into());
    }
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
    {
        return Err(
            "is an absolute path; name a file inside the campaign folder, relative to it".into(),
        );
    }
    if relative.components().any(|c| c == Component::ParentDir) {
        return Err("goes up with `..`; name a file inside the campaign folder".into());
    }
    let path = dir.join(relative);
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err("is a symbolic link leading outside the campaign folder".into());
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(source: &str) -> Result<String, String> {
        let mut tera = new_tera();
        tera.add_raw_template("t.svg", source).unwrap();
        render(&tera, "t.svg", &tera::Context::new()).map_err(|failure| match failure {
            RenderFailure::Tera(e) => crate::blocks::suppress::error_chain(&e),
            RenderFailure::TooLarge(bytes) => RenderFailure::too_large(bytes),
        })
    }

    #[test]
    fn withheld_functions_fail_with_a_reason() {
        std::env::set_var("OPENTIME_SANDBOX_UNIT_TEST", "leaked");
        let error = rendered(r#"{{ get_env(name="OPENTIME_SANDBOX_UNIT_TEST") }}"#).unwrap_err();
        assert!(error.contains("`get_env` is not available"), "{error}");
        assert!(!error.contains("leaked"));
        for source in ["{{ now() }}", "{{ get_random(end=9) }}"] {
            let error = rendered(source).unwrap_err();
            assert!(error.contains("is not available"), "{source}: {error}");
        }
    }

    #[test]
    fn range_is_bounded_per_call_and_per_render() {
        assert_eq!(
            rendered("{% for i in range(start=1, end=8, step_by=3) %}{{ i }},{% endfor %}")
                .unwrap(),
            "1,4,7,"
        );
        assert_eq!(
            rendered("{{ range(end=10000) | length }}").unwrap(),
            "10000"
        );
        let error = rendered("{% for i in range(end=100000000) %}x{% endfor %}").unwrap_err();
        assert!(
            error.contains("template-limit") && error.contains("at most 10000"),
            "{error}"
        );
        let error = rendered("{{ range(end=3, step_by=0) }}").unwrap_err();
        assert!(error.contains("step_by"), "{error}");
        let nested =
            "{% for a in range(end=10000) %}{% for b in range(end=10000) %}{% endfor %}{% endfor %}";
        let error = rendered(nested).unwrap_err();
        assert!(error.contains("in all"), "{error}");
        // The budget is per render: the next render starts afresh.
        assert!(rendered("{{ range(end=10000) | length }}").is_ok());
    }

    #[test]
    fn output_is_bounded() {
        let big = "{% for i in range(end=10000) %}{{ s }}{% endfor %}";
        let mut tera = new_tera();
        tera.add_raw_template("t.svg", big).unwrap();
        let context = tera::Context::from_value(json!({"s": "x".repeat(300)})).unwrap();
        match render(&tera, "t.svg", &context) {
            Err(RenderFailure::TooLarge(bytes)) => assert_eq!(bytes, 3_000_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_check_names_the_line_of_what_it_refuses() {
        let known = |name: &str| name == "part.svg";
        let refused =
            |source: &str| check_template("t.svg", source, known, &TEMPLATE_FUNCTIONS).unwrap_err();
        let r = refused("<svg>\n<text>{{ get_env(name=\"OPENTIME_SECRET\") }}</text>");
        assert_eq!(r.line, 2);
        assert!(
            r.reason.contains("`get_env` is not available"),
            "{}",
            r.reason
        );
        let r = refused("<svg>\n\n{% if now() %}{% endif %}");
        assert_eq!(r.line, 3);
        let r = refused("{{ now }}\n{{ x | default(value=get_random(end=3)) }}");
        assert_eq!((r.line, r.reason.contains("get_random")), (2, true));
        let r = refused("{{ my_function() }}");
        assert!(
            r.reason
                .contains("range, throw, text_lines, fit_size, text_width"),
            "{}",
            r.reason
        );
        for (source, line) in [
            ("a\n{% include \"/etc/hostname\" %}", 2),
            ("{% include \"../other/x.svg\" %}", 1),
            ("{% include \"other.svg\" %}", 1),
            ("{% import \"../m.tera\" as m %}", 1),
            ("{% extends \"/etc/passwd\" %}", 1),
        ] {
            let r = refused(source);
            assert_eq!(r.line, line, "{source}");
            assert!(r.reason.contains("only the campaign's own"), "{}", r.reason);
        }
        for fine in [
            "{{ now }} {{ now_ts }} {{ ctx.a | default(value=1) }}",
            "{% include \"part.svg\" %}{% include \"opt.svg\" ignore missing %}",
            "{% for i in range(end=3) %}{{ i }}{% endfor %}{{ throw_me }}",
            "{{ oops(",
            "{{ fit_size(text=\"a\", width=9, max=9, min=1) }}",
        ] {
            assert_eq!(
                check_template("t.svg", fine, known, &TEMPLATE_FUNCTIONS),
                Ok(()),
                "{fine}"
            );
        }
        // Links and conditions have no renderer at hand: no text functions there.
        let r = check_template("link", "{{ text_width(text=x, size=9) }}", known, &OFFERED)
            .unwrap_err();
        assert!(r.reason.contains("can call range, throw)"), "{}", r.reason);
    }

    #[test]
    fn manifest_paths_stay_inside_the_campaign() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        std::fs::create_dir_all(dir.join("fallback")).unwrap();
        std::fs::write(dir.join("fallback/a.svg"), "<svg/>").unwrap();
        std::fs::write(root.path().join("x.svg"), "<svg/>").unwrap();
        assert!(campaign_file(&dir, "fallback/a.svg").is_ok());
        assert!(campaign_file(&dir, "./fallback/missing.svg").is_ok());
        for (file, expected) in [
            ("/etc/hostname", "absolute"),
            ("../x.svg", "`..`"),
            ("fallback/../../x.svg", "`..`"),
            ("", "empty"),
        ] {
            let error = campaign_file(&dir, file).unwrap_err();
            assert!(error.contains(expected), "{file}: {error}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("x.svg"), dir.join("out.svg")).unwrap();
            std::os::unix::fs::symlink(dir.join("fallback/a.svg"), dir.join("in.svg")).unwrap();
            let error = campaign_file(&dir, "out.svg").unwrap_err();
            assert!(error.contains("symbolic link"), "{error}");
            assert!(campaign_file(&dir, "in.svg").is_ok());
        }
    }

    #[test]
    fn macros_that_recurse_are_refused_at_load() {
        let sources = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect()
        };
        let itself = sources(&[(
            "t.svg",
            "{% import \"t.svg\" as m %}\n{% macro f(n) %}{{ self::f(n=n) }}{% endmacro f %}",
        )]);
        let (file, refusal) = check_macro_recursion(&itself).unwrap_err();
        assert_eq!((file.as_str(), refusal.line), ("t.svg", 2));
        assert!(
            refusal.reason.contains("macro `f` calls itself"),
            "{refusal:?}"
        );

        // Through a macro of another file, imported under a namespace.
        let across = sources(&[
            (
                "a.svg",
                "{% import \"b.svg\" as b %}{% macro one() %}{{ b::two() }}{% endmacro one %}",
            ),
            (
                "b.svg",
                "{% import \"a.svg\" as a %}{% macro two() %}{{ a::one() }}{% endmacro two %}",
            ),
        ]);
        assert!(check_macro_recursion(&across).is_err());

        // Macros calling other macros, without a cycle, are fine.
        let nested = sources(&[(
            "t.svg",
            "{% macro row(x) %}<g>{{ x }}</g>{% endmacro row %}\
             {% macro rows(xs) %}{% for x in xs %}{{ self::row(x=x) }}{% endfor %}{% endmacro rows %}",
        )]);
        assert_eq!(check_macro_recursion(&nested), Ok(()));
    }

    #[test]
    fn a_set_global_that_doubles_is_refused_at_load() {
        let check = |source: &str| check_template("t.svg", source, |_| false, &TEMPLATE_FUNCTIONS);
        for doubling in [
            "{% set_global s = \"x\" %}\n{% for i in range(end=40) %}{% set_global s = s ~ s %}{% endfor %}",
            "{% set_global l = [1] %}{% for i in range(end=40) %}{% set_global l = l | concat(with=l) %}{% endfor %}",
        ] {
            let refusal = check(doubling).unwrap_err();
            assert!(refusal.reason.contains("more than once"), "{refusal:?}");
        }
        assert_eq!(check("x\n{% set_global s = s ~ s %}").unwrap_err().line, 2);
        for fine in [
            "{% set_global total = 0 %}{% for i in ctx.items %}{% set_global total = total + i.price %}{% endfor %}",
            "{% set_global s = \"\" %}{% for i in ctx.items %}{% set_global s = s ~ i.name %}{% endfor %}",
            "{% set s = s ~ s %}",
            "{% set_global sizes = size ~ sizes_other %}",
        ] {
            assert_eq!(check(fine), Ok(()), "{fine}");
        }
    }
}
