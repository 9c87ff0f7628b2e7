//! The studio for one test: `TestStudio::start` serves a copy of the repo's templates (so a
//! test may change them) on a free port with a known token, and logs in over HTTP.

use super::{copy_templates, repo, SECRET};
use opentime::clock::Clock;
use opentime::config::StudioArgs;
use opentime::RunningStudio;
use std::path::{Path, PathBuf};

/// The studio token the tests log in with.
pub const STUDIO_TOKEN: &str = "studio-test-token-0123456789";

pub struct TestStudio {
    pub base: String,
    running: Option<RunningStudio>,
    templates: tempfile::TempDir,
    _history: tempfile::TempDir,
}

impl TestStudio {
    /// A studio over a fresh copy of the repo's templates.
    pub async fn start() -> Self {
        let templates = copy_templates();
        let history = tempfile::tempdir().expect("temp dir");
        let mut args = StudioArgs::with_dirs(templates.path(), &repo().join("assets"));
        args.listen = "127.0.0.1:0".parse().expect("address");
        args.common.secret = Some(SECRET.to_owned());
        let fonts = super::test_fonts();
        args.common.font_paths = fonts.paths;
        args.common.system_fonts = fonts.system;
        args.access.studio_token = Some(STUDIO_TOKEN.to_owned());
        args.access.studio_history = history.path().to_owned();
        let running = opentime::start_studio(args, Clock::system())
            .await
            .expect("studio starts");
        Self {
            base: format!("http://{}", running.addr),
            running: Some(running),
            templates,
            _history: history,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A file of the studio's copy of the demo campaign.
    pub fn demo_file(&self, file: &str) -> PathBuf {
        self.templates.path().join("demo").join(file)
    }

    pub fn templates(&self) -> &Path {
        self.templates.path()
    }

    /// Logs in with `?token=` and returns the session cookie's value and its CSRF token.
    pub async fn login(&self) -> (String, String) {
        let client = super::no_redirects();
        let answer =
            super::send(client.get(self.url(&format!("/studio/?token={STUDIO_TOKEN}")))).await;
        assert_eq!(answer.status, 303, "the token opens a session");
        assert_eq!(
            answer.header("location"),
            Some("/studio/"),
            "and the URL loses it"
        );
        let cookie = answer
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|c| c.strip_prefix("opentime_studio="))
            .expect("a session cookie")
            .to_owned();
        let page = super::send(
            client
                .get(self.url("/studio/"))
                .header("cookie", format!("opentime_studio={cookie}")),
        )
        .await;
        let text = page.text();
        let csrf = text
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries its CSRF token")
            .to_owned();
        (cookie, csrf)
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}
