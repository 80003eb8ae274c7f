//! Plain-text tables for terminal output: left-aligned columns separated by two spaces.
//!
//! Formatting only; it must never fetch or interpret data.

/// Render `rows` under `headers`. Cells containing newlines or tabs are flattened to spaces
/// so a row stays one line; trailing spaces are trimmed.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            let w = widths.get(i).copied().unwrap_or(0);
            for _ in cell.chars().count()..w {
                out.push(' ');
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_trims() {
        let t = render(
            &["ID", "STATE"],
            &[
                vec!["a".into(), "RUNNING".into()],
                vec!["long-id".into(), "".into()],
            ],
        );
        assert_eq!(t, "ID       STATE\na        RUNNING\nlong-id\n");
    }

    #[test]
    fn header_only_when_empty_and_newlines_flattened() {
        assert_eq!(render(&["A", "B"], &[]), "A  B\n");
        assert_eq!(render(&["A"], &[vec!["x\ny".into()]]), "A\nx y\n");
    }
}
