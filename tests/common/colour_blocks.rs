//! Campaigns whose templates are solid colours, one per variant or arm, so a test tells which
//! one an answer shows from one decoded pixel.

/// A temporary templates folder holding `campaign` with `manifest` and, per `(name, rgb)`,
/// `name.svg`: a 40×20 rectangle of that colour.
pub fn colour_campaign(
    campaign: &str,
    manifest: &str,
    colours: &[(&str, [u8; 3])],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(campaign);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("blocks.toml"), manifest).unwrap();
    for (name, [r, g, b]) in colours {
        std::fs::write(
            folder.join(format!("{name}.svg")),
            format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="rgb({r},{g},{b})"/></svg>"#),
        )
        .unwrap();
    }
    dir
}

/// Which of `colours` the middle of `png` is.
pub fn colour_of(png: &image::RgbaImage, colours: &[(&'static str, [u8; 3])]) -> &'static str {
    let [r, g, b, _] = png.get_pixel(png.width() / 2, png.height() / 2).0;
    colours
        .iter()
        .find(|(_, colour)| *colour == [r, g, b])
        .map(|(name, _)| *name)
        .unwrap_or_else(|| panic!("no variant is {r},{g},{b}"))
}
