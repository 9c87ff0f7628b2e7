//! The `opentime` binary's offline commands, run as a user would run them.

mod common;

use common::{copy_templates, decode_png, repo, SECRET};
use opentime::signing::Signer;
use std::io::Write;
use std::process::{Command, Stdio};

fn opentime() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opentime"));
    command
        .current_dir(repo())
        .env_remove("OPENTIME_SECRET")
        .env_remove("OPENTIME_PUBLIC_URL")
        .env_remove("OPENTIME_CONFIG")
        .env("OPENTIME_LOG", "warn");
    command
}

#[test]
fn url_prints_a_signed_absolute_url_alone() {
    let output = opentime()
        .args(["url", "demo/cart", "--subscriber", "alice"])
        .env("OPENTIME_SECRET", SECRET)
        .env("OPENTIME_PUBLIC_URL", "https://render.example.com/")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let url = stdout.trim();
    let prefix = "https://render.example.com/img/demo/cart.png?s=alice&t=";
    assert!(url.starts_with(prefix), "{url}");
    let token = &url[prefix.len()..];
    assert!(Signer::from_secrets(SECRET).unwrap().verify("alice", token));
}

#[test]
fn render_writes_the_block_at_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cart.png");
    let status = opentime()
        .args([
            "render",
            "demo/cart",
            "--context",
            "templates/demo/samples/alice.json",
            "--scale",
            "2",
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let image = decode_png(&std::fs::read(&out).unwrap());
    assert_eq!(image.dimensions(), (1200, 600));
    let html = dir.path().join("cart.html");
    let status = opentime()
        .args([
            "render",
            "demo/cart",
            "--context",
            "templates/demo/samples/carol.json",
            "-o",
        ])
        .arg(&html)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read_to_string(&html).unwrap().contains("Zoë"));
}

#[test]
fn check_passes_on_the_shipped_templates() {
    let output = opentime().arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok    demo/cart.png with alice"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    demo/cart.html with bob"), "{stdout}");
}

#[test]
fn check_warns_about_texts_cut_running_out_or_without_a_font() {
    let templates = copy_templates();
    let path = templates.path().join("demo/points.svg");
    let text = std::fs::read_to_string(&path).unwrap();
    // A text nobody fitted: a long last name at the right edge.
    std::fs::write(
        &path,
        text.replace(
            "</svg>",
            r##"<text x="440" y="114" font-size="12" fill="#c7d2fe">{{ ctx.profile.last_name }}</text></svg>"##,
        ),
    )
    .unwrap();
    let fonts: Vec<String> = common::test_fonts()
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let output = opentime()
        .arg("check")
        .arg("--templates")
        .arg(templates.path())
        .env("OPENTIME_SYSTEM_FONTS", "false")
        .env("OPENTIME_FONT_PATHS", fonts.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Warnings, not errors.
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "warn  demo/cart.png with maximiliane: text_lines cut \"Organic linen relaxed-fit \
             long-sleeve button-down shirt\" to 1 line(s) of 372 px"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warn  demo/points.png with maximiliane: text \"von Hohenzollern-Sigmaringen\" runs \
             out of the image ("
        ),
        "{stdout}"
    );
    assert!(stdout.contains("px past the right edge)"), "{stdout}");
    assert!(!stdout.contains("no font has"), "{stdout}");
    assert!(
        stdout.contains("warning(s): texts cut or running out"),
        "{stdout}"
    );
    // With the shipped fonts only, Cyrillic has no font: said, with the characters.
    let output = opentime()
        .arg("check")
        .arg("--templates")
        .arg(templates.path())
        .env("OPENTIME_SYSTEM_FONTS", "false")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("warn  demo/points.png with maria: no font has U+041C М, U+0430 а"),
        "{stdout}"
    );
}

#[test]
fn check_names_file_and_line_of_a_broken_template() {
    let templates = copy_templates();
    let path = templates.path().join("demo/points.svg");
    let text = std::fs::read_to_string(&path).unwrap();
    let broken_line = text
        .lines()
        .position(|l| l.contains("points | grouped"))
        .unwrap()
        + 1;
    std::fs::write(
        &path,
        text.replace("{{ points | grouped }}", "{{ points | grouped"),
    )
    .unwrap();
    let output = opentime()
        .arg("check")
        .arg("--templates")
        .arg(templates.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("demo/points.svg:{broken_line}:");
    assert!(
        stdout.contains(&expected),
        "expected {expected} in {stdout}"
    );
}

#[test]
fn tokens_adds_a_column_for_the_esp() {
    let mut child = opentime()
        .arg("tokens")
        .env("OPENTIME_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"email,subscriber\nalice@example.com,alice\nbob@example.com,bob\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("email,subscriber,opentime_token"));
    let signer = Signer::from_secrets(SECRET).unwrap();
    for (line, subscriber) in lines.zip(["alice", "bob"]) {
        let token = line.rsplit(',').next().unwrap();
        assert!(signer.verify(subscriber, token), "{line}");
    }
}

#[test]
fn serve_refuses_a_short_secret_with_a_clear_error() {
    let output = opentime()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OPENTIME_SECRET", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OPENTIME_SECRET: secret number 1 is shorter than 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("short\n"));
}
