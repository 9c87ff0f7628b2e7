//! The template sandbox (`src/blocks/sandbox.rs`), seen from outside: templates that try to read
//! the environment, the clock or a random source, or files outside their campaign, are refused
//! when the campaign loads (`opentime check` names `file:line`); templates that try to burn the
//! CPU or produce huge outputs give their block's fallback; the secret never shows.

mod common;

use common::{copy_templates, get, repo, TestServer, SECRET};
use std::path::Path;
use std::process::Command;

/// A block named `a` rendering `a.svg`, shared, plus `extra` settings.
fn manifest(extra: &str) -> String {
    format!(
        "[blocks.a]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 40\nheight = 20\nreads = []\n{extra}"
    )
}

const SVG_START: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">"#;

/// A campaign folder `root/name` with a manifest and `a.svg` (and a fallback image).
fn campaign(root: &Path, name: &str, manifest_text: &str, svg_body: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("fallback")).unwrap();
    std::fs::write(dir.join("blocks.toml"), manifest_text).unwrap();
    std::fs::write(
        dir.join("a.svg"),
        format!("{SVG_START}\n{svg_body}\n</svg>\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("fallback/a.svg"),
        format!(r#"{SVG_START}<rect width="40" height="20" fill="grey"/></svg>"#),
    )
    .unwrap();
}

/// The campaigns the sandbox refuses when they load, each with what the error must name.
fn refused_campaigns(root: &Path) -> Vec<(&'static str, &'static str)> {
    let body_at_line_3 =
        |expression: &str| format!("<rect width=\"1\" height=\"1\"/>\n<text>{expression}</text>");
    let plain = manifest("fallback = \"fallback/a.svg\"\n");
    campaign(
        root,
        "envleak",
        &plain,
        &body_at_line_3(r#"{{ get_env(name="OPENTIME_SECRET") }}"#),
    );
    campaign(root, "clock", &plain, &body_at_line_3("{{ now() }}"));
    campaign(
        root,
        "random",
        &plain,
        &body_at_line_3("{{ get_random(end=10) }}"),
    );
    campaign(
        root,
        "include_abs",
        &plain,
        &body_at_line_3(r#"{% include "/etc/hostname" %}"#),
    );
    campaign(
        root,
        "include_up",
        &plain,
        &body_at_line_3(r#"{% include "../demo/cart.svg" %}"#),
    );
    // extends and import come first in a template.
    for (name, tag) in [
        ("extends_up", r#"{% extends "../demo/cart.svg" %}"#),
        ("import_up", r#"{% import "../demo/macros.tera" as m %}"#),
    ] {
        campaign(root, name, &plain, "");
        std::fs::write(
            root.join(name).join("a.svg"),
            format!("{tag}\n{SVG_START}</svg>\n"),
        )
        .unwrap();
    }
    let fine = "<rect width=\"1\" height=\"1\"/>";
    campaign(
        root,
        "abs_fallback_html",
        &manifest("fallback_html = \"/etc/hostname\"\n"),
        fine,
    );
    campaign(
        root,
        "up_fallback",
        &manifest("fallback = \"../x.svg\"\n"),
        fine,
    );
    std::fs::write(root.join("x.svg"), format!("{SVG_START}</svg>")).unwrap();
    campaign(
        root,
        "up_suppressed",
        &manifest("suppress_if = \"true\"\nsuppressed_image = \"fallback/../../x.svg\"\n"),
        fine,
    );
    campaign(
        root,
        "symlink_fallback",
        &manifest("fallback = \"fallback/out.svg\"\n"),
        fine,
    );
    std::os::unix::fs::symlink(
        root.join("x.svg"),
        root.join("symlink_fallback/fallback/out.svg"),
    )
    .unwrap();
    campaign(root, "symlink_template", &manifest(""), fine);
    std::os::unix::fs::symlink("/etc/hostname", root.join("symlink_template/host.svg")).unwrap();
    vec![
        ("envleak/a.svg:3: `get_env` is not available", ""),
        ("clock/a.svg:3: `now` is not available", "use the `now` variable"),
        ("random/a.svg:3: `get_random` is not available", ""),
        ("include_abs/a.svg:3: {% include \"/etc/hostname\" %}", "only the campaign's own"),
        ("include_up/a.svg:3: {% include \"../demo/cart.svg\" %}", ""),
        ("extends_up/a.svg:1: {% extends \"../demo/cart.svg\" %}", ""),
        ("import_up/a.svg:1: {% import \"../demo/macros.tera\" %}", ""),
        (
            "abs_fallback_html/blocks.toml: block `a`: fallback_html = \"/etc/hostname\" is an absolute path",
            "",
        ),
        ("up_fallback/blocks.toml: block `a`: fallback = \"../x.svg\" goes up with `..`", ""),
        (
            "up_suppressed/blocks.toml: block `a`: suppressed_image = \"fallback/../../x.svg\"",
            "",
        ),
        (
            "symlink_fallback/blocks.toml: block `a`: fallback = \"fallback/out.svg\" is a symbolic link leading outside",
            "",
        ),
        ("symlink_template/host.svg: is a symbolic link leading outside", ""),
    ]
}

/// Campaigns that load but whose renders go over a bound.
fn bounded_campaigns(root: &Path) {
    let plain = manifest("fallback = \"fallback/a.svg\"\n");
    campaign(
        root,
        "runaway",
        &plain,
        "{% for i in range(end=100000000) %}<rect/>{% endfor %}",
    );
    campaign(
        root,
        "nested",
        &plain,
        "{% for a in range(end=10000) %}{% for b in range(end=10000) %}{% endfor %}{% endfor %}",
    );
    campaign(
        root,
        "huge",
        &plain,
        "{% for i in range(end=10000) %}<rect width=\"1\" height=\"1\" fill=\"#{{ i }}\"/><!-- padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding -->{% endfor %}",
    );
    // A countdown's frames share one range budget: 99,000 items a frame, three frames.
    let countdown =
        "[blocks.a]\nkind = \"countdown\"\ntemplate = \"a.svg\"\nwidth = 40\nheight = 20\n\
                     deadline = \"2099-01-01T00:00\"\ntz = \"UTC\"\nframes = 3\n\
                     fallback = \"fallback/a.svg\"\n";
    campaign(
        root,
        "countdown_runaway",
        countdown,
        "{% for a in range(end=9000) %}{% for b in range(end=10) %}{% endfor %}{% endfor %}<text>{{ seconds }}</text>",
    );
    // What stays allowed: the `now` variable, bounded ranges, including the campaign's own file.
    let dir = root.join("allowed");
    campaign(
        root,
        "allowed",
        &plain,
        "{% include \"part.tera\" %}<text>{{ now }} {{ now_ts }}</text>{% for i in range(end=3) %}<rect x=\"{{ i }}\" width=\"1\" height=\"1\"/>{% endfor %}",
    );
    std::fs::write(dir.join("part.tera"), "<rect width=\"2\" height=\"2\"/>").unwrap();
}

fn opentime_check(templates: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_opentime"))
        .current_dir(repo())
        .env("OPENTIME_SECRET", SECRET)
        .env_remove("OPENTIME_CONFIG")
        .env("OPENTIME_LOG", "warn")
        .arg("check")
        .arg("--templates")
        .arg(templates)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn check_names_file_and_line_of_what_the_sandbox_refuses() {
    let templates = tempfile::tempdir().unwrap();
    let expected = refused_campaigns(templates.path());
    bounded_campaigns(templates.path());
    let (success, output) = opentime_check(templates.path());
    assert!(!success, "{output}");
    assert!(!output.contains(SECRET), "the secret leaked: {output}");
    let root = templates.path().display().to_string();
    for (error, also) in expected {
        let line = output
            .lines()
            .find(|line| line.contains(&format!("{root}/{error}")))
            .unwrap_or_else(|| panic!("expected `{error}` in:\n{output}"));
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(also), "expected `{also}` in {line}");
    }
    for campaign in ["runaway", "nested", "huge"] {
        let line = output
            .lines()
            .find(|line| line.starts_with(&format!("error {campaign}/a.png")))
            .unwrap_or_else(|| panic!("expected a render error of {campaign} in:\n{output}"));
        assert!(
            line.contains(&format!("{root}/{campaign}/a.svg: template-limit: ")),
            "{line}"
        );
    }
    assert!(output.contains("at most 10000"), "{output}");
    assert!(output.contains("at most 100000 items in all"), "{output}");
    assert!(output.contains("more than the 2097152"), "{output}");
    assert!(output.contains("ok    allowed/a.png"), "{output}");
    let countdown = output
        .lines()
        .find(|line| line.starts_with("error countdown_runaway/a.gif"))
        .unwrap_or_else(|| panic!("expected the countdown to exceed its budget in:\n{output}"));
    assert!(countdown.contains("template-limit"), "{countdown}");
}

#[tokio::test]
async fn bounds_give_the_fallback_and_refused_campaigns_are_not_served() {
    // A template that could read the environment would find the secret here.
    std::env::set_var("OPENTIME_SECRET", SECRET);
    let templates = copy_templates();
    refused_campaigns(templates.path());
    bounded_campaigns(templates.path());
    let server = TestServer::builder()
        .embedded_store()
        .templates(templates.path())
        .keep(templates)
        .start()
        .await;

    let countdown = get(&server.url("/img/countdown_runaway/a.gif")).await;
    assert_eq!(countdown.status, 200);
    assert_eq!(
        countdown.header("x-opentime-fallback"),
        Some("template-error"),
        "a countdown's frames share the range budget"
    );
    for campaign in ["runaway", "nested", "huge"] {
        let answer = get(&server.url(&format!("/img/{campaign}/a.png"))).await;
        assert_eq!(answer.status, 200, "{campaign}");
        assert_eq!(
            answer.header("x-opentime-fallback"),
            Some("template-error"),
            "{campaign}"
        );
        assert!(answer.header("cache-control").unwrap().contains("no-store"));
    }
    let allowed = get(&server.url("/img/allowed/a.png")).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-opentime-fallback"), None);

    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| h.len() >= 4);
    for campaign in [
        "envleak",
        "clock",
        "random",
        "include_abs",
        "abs_fallback_html",
    ] {
        let answer = get(&server.url(&format!("/img/{campaign}/a.png"))).await;
        assert_eq!(answer.status, 404, "{campaign} must not load");
        let html = get(&server.url(&format!("/html/{campaign}/a.html"))).await;
        for body in [&answer.body, &html.body] {
            let body = String::from_utf8_lossy(body);
            assert!(!body.contains(SECRET), "{campaign}: the secret leaked");
            if let Some(host) = hostname.as_deref() {
                assert!(!body.contains(host), "{campaign}: /etc/hostname leaked");
            }
        }
    }

    // The demo campaign still loads and renders next to them.
    let cart = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(cart.status, 200);
    assert_eq!(cart.header("x-opentime-fallback"), None);
    server.shutdown().await;
}
