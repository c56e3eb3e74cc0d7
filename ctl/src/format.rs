//! Output tables the way ovs-vsctl prints them (OVS's lib/table.c): `--format=list`
//! (the default for `list` and `find`), `table`, `csv`, `json` and `html`, with cells
//! rendered by `--data=string` (ovsdb value syntax), `bare` or `json`.

use rvs_ovsdb::{ColumnType, Datum};
use serde_json::{Value as Json, json};

/// `--format`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    List,
    Table,
    Csv,
    Json,
    Html,
}

/// `--data`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellFormat {
    String,
    Bare,
    Json,
}

/// The table style set by the global options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub format: Format,
    pub cell: CellFormat,
    pub headings: bool,
    pub pretty: bool,
    pub max_column_width: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style { format: Format::List, cell: CellFormat::String, headings: true, pretty: false, max_column_width: 0 }
    }
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "table" => Format::Table,
            "list" => Format::List,
            "html" => Format::Html,
            "csv" => Format::Csv,
            "json" => Format::Json,
            _ => return None,
        })
    }
}

impl CellFormat {
    pub fn parse(s: &str) -> Option<CellFormat> {
        Some(match s {
            "string" => CellFormat::String,
            "bare" => CellFormat::Bare,
            "json" => CellFormat::Json,
            _ => return None,
        })
    }
}

/// One cell: a typed datum.
#[derive(Debug, Clone)]
pub struct Cell {
    pub datum: Datum,
    pub ty: ColumnType,
}

impl Cell {
    fn text(&self, f: CellFormat) -> String {
        match f {
            CellFormat::String => self.datum.to_cli(&self.ty),
            CellFormat::Bare => self.datum.to_bare(),
            CellFormat::Json => self.datum.to_json().to_string(),
        }
    }
}

/// A result table of `list`/`find`.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headings: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Prints tables one after another, as ovs-vsctl does within one invocation (a blank
/// line between two tables in list, table and csv formats).
#[derive(Debug, Default)]
pub struct Printer {
    printed_one: bool,
}

impl Printer {
    pub fn format(&mut self, t: &Table, style: &Style) -> String {
        let mut s = String::new();
        let sep = |s: &mut String, printed: &mut bool| {
            if *printed {
                s.push('\n');
            }
            *printed = true;
        };
        match style.format {
            Format::Table => {
                sep(&mut s, &mut self.printed_one);
                table(t, style, &mut s);
            }
            Format::List => {
                sep(&mut s, &mut self.printed_one);
                list(t, style, &mut s);
            }
            Format::Csv => {
                sep(&mut s, &mut self.printed_one);
                csv(t, style, &mut s);
            }
            Format::Html => html(t, style, &mut s),
            Format::Json => json_out(t, style, &mut s),
        }
        s
    }
}

fn finish_line(s: &mut String) {
    while s.ends_with(' ') {
        s.pop();
    }
    s.push('\n');
}

/// Pads or cuts `text` to exactly `w` bytes, as ovs-vsctl's printf "%-*.*s" does: widths
/// are byte counts, so a cell with non-ASCII text gets fewer pad spaces than its
/// characters suggest. A cut that would fall inside a UTF-8 sequence stops before it and
/// pads the rest (ovs-vsctl prints the partial sequence; a `String` cannot hold it).
fn fit(text: &str, w: usize) -> String {
    let mut end = text.len().min(w);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &text[..end], " ".repeat(w - end))
}

fn table(t: &Table, st: &Style, s: &mut String) {
    let texts: Vec<Vec<String>> = t.rows.iter().map(|r| r.iter().map(|c| c.text(st.cell)).collect()).collect();
    let widths: Vec<usize> = (0..t.headings.len())
        .map(|x| {
            let mut w = texts.iter().map(|r| r[x].len()).max().unwrap_or(0);
            if st.max_column_width > 0 && w > st.max_column_width {
                w = st.max_column_width;
            }
            if st.headings {
                w = w.max(t.headings[x].len());
            }
            w
        })
        .collect();
    if st.headings {
        let h: Vec<String> = t.headings.iter().zip(&widths).map(|(h, w)| format!("{h:<w$}")).collect();
        s.push_str(&h.join(" "));
        finish_line(s);
        let d: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        s.push_str(&d.join(" "));
        finish_line(s);
    }
    for r in &texts {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| fit(c, *w)).collect();
        s.push_str(&cells.join(" "));
        finish_line(s);
    }
}

fn list(t: &Table, st: &Style, s: &mut String) {
    for (y, r) in t.rows.iter().enumerate() {
        if y > 0 {
            s.push('\n');
        }
        for (x, c) in r.iter().enumerate() {
            if st.headings {
                s.push_str(&format!("{:<20}: ", t.headings[x]));
            }
            s.push_str(&c.text(st.cell));
            s.push('\n');
        }
    }
}

fn csv_cell(text: &str, s: &mut String) {
    if !text.contains(['\n', '"', ',']) {
        s.push_str(text);
    } else {
        s.push('"');
        s.push_str(&text.replace('"', "\"\""));
        s.push('"');
    }
}

fn csv(t: &Table, st: &Style, s: &mut String) {
    if st.headings {
        for (x, h) in t.headings.iter().enumerate() {
            if x > 0 {
                s.push(',');
            }
            csv_cell(h, s);
        }
        s.push('\n');
    }
    for r in &t.rows {
        for (x, c) in r.iter().enumerate() {
            if x > 0 {
                s.push(',');
            }
            csv_cell(&c.text(st.cell), s);
        }
        s.push('\n');
    }
}

fn html_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_cell(element: &str, content: &str, s: &mut String) {
    s.push_str(&format!("    <{element}>"));
    let mut rest = content;
    while !rest.is_empty() {
        let is_uuid = rest.len() >= 36 && rest.is_char_boundary(36) && rest[..36].parse::<rvs_ovsdb::Uuid>().is_ok();
        if is_uuid {
            s.push_str(&format!("<a href=\"#{}\">{}</a>", &rest[..36], &rest[..8]));
            rest = &rest[36..];
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            s.push_str(&html_escape(&ch.to_string()));
            rest = &rest[ch.len_utf8()..];
        }
    }
    s.push_str(&format!("</{element}>\n"));
}

fn html(t: &Table, st: &Style, s: &mut String) {
    s.push_str("<table border=1>\n");
    if st.headings {
        s.push_str("  <tr>\n");
        for h in &t.headings {
            html_cell("th", h, s);
        }
        s.push_str("  </tr>\n");
    }
    for r in &t.rows {
        s.push_str("  <tr>\n");
        for (x, c) in r.iter().enumerate() {
            let text = c.text(st.cell);
            if t.headings[x] == "_uuid" {
                let short: String = text.chars().take(8).collect();
                s.push_str(&format!("    <td><a name=\"{}\">{}</a></td>\n", html_escape(&text), html_escape(&short)));
            } else {
                html_cell("td", &text, s);
            }
        }
        s.push_str("  </tr>\n");
    }
    s.push_str("</table>\n");
}

fn json_out(t: &Table, st: &Style, s: &mut String) {
    let data: Vec<Json> = t.rows.iter().map(|r| Json::Array(r.iter().map(|c| c.datum.to_json()).collect())).collect();
    let v = json!({ "headings": t.headings, "data": data });
    let text = if st.pretty { serde_json::to_string_pretty(&v).unwrap_or_default() } else { v.to_string() };
    s.push_str(&text);
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ovsdb::schema::{int_range, optional, scalar, smap, string};

    fn t() -> Table {
        Table {
            headings: vec!["name".into(), "tag".into()],
            rows: vec![
                vec![Cell { datum: Datum::string("pv2"), ty: scalar(string()) }, Cell { datum: Datum::integer(140), ty: optional(int_range(0, 4095)) }],
                vec![Cell { datum: Datum::string("brlv140"), ty: scalar(string()) }, Cell { datum: Datum::integer(140), ty: optional(int_range(0, 4095)) }],
            ],
        }
    }

    #[test]
    fn table_format_matches_ovs() {
        let st = Style { format: Format::Table, ..Style::default() };
        assert_eq!(Printer::default().format(&t(), &st), "name    tag\n------- ---\npv2     140\nbrlv140 140\n");
    }

    #[test]
    fn table_pads_and_cuts_in_bytes_as_ovs() {
        // ovs-vsctl 3.1: `"é"` is 4 bytes, padded to the 18-byte column with 14 spaces, not 15.
        let cell = |s: &str| Cell { datum: Datum::string(s), ty: scalar(string()) };
        let t = Table { headings: vec!["name".into(), "tag".into()], rows: vec![vec![cell("vhost_user-name.to"), cell("x")], vec![cell("é"), cell("y")]] };
        let st = Style { format: Format::Table, ..Style::default() };
        let out = Printer::default().format(&t, &st);
        assert_eq!(out.lines().nth(3), Some(format!("\"é\"{} y", " ".repeat(14)).as_str()), "{out}");
        assert_eq!(out.lines().nth(3).unwrap().len(), out.lines().nth(2).unwrap().len());
        // --max-column-width cuts at a byte count too: `"aé"` (5 bytes) to 4 is `"aé`.
        let t = Table { headings: vec!["name".into()], rows: vec![vec![cell("aé")]] };
        let st = Style { format: Format::Table, max_column_width: 4, ..Style::default() };
        assert_eq!(Printer::default().format(&t, &st), "name\n----\n\"aé\n");
        // a cut inside a UTF-8 sequence stops before it: `"é"` to 2 bytes is `"` and a space, trimmed
        let t = Table { headings: vec!["n".into()], rows: vec![vec![cell("é")]] };
        let st = Style { format: Format::Table, max_column_width: 2, ..Style::default() };
        assert_eq!(Printer::default().format(&t, &st), "n\n--\n\"\n");
    }

    #[test]
    fn list_and_csv() {
        let mut p = Printer::default();
        let st = Style::default();
        assert_eq!(p.format(&t(), &st), "name                : pv2\ntag                 : 140\n\nname                : brlv140\ntag                 : 140\n");
        assert!(p.format(&t(), &st).starts_with('\n'), "a second table is separated by a blank line");
        let csv = Style { format: Format::Csv, ..Style::default() };
        assert_eq!(Printer::default().format(&t(), &csv), "name,tag\npv2,140\nbrlv140,140\n");
    }

    #[test]
    fn json_and_bare() {
        let st = Style { format: Format::Json, ..Style::default() };
        assert_eq!(Printer::default().format(&t(), &st), "{\"data\":[[\"pv2\",140],[\"brlv140\",140]],\"headings\":[\"name\",\"tag\"]}\n");
        let m = Table { headings: vec!["external_ids".into()], rows: vec![vec![Cell { datum: Datum::smap([("a", "b c")]), ty: smap() }]] };
        let bare = Style { cell: CellFormat::Bare, headings: false, ..Style::default() };
        assert_eq!(Printer::default().format(&m, &bare), "a=b c\n");
        let js = Style { cell: CellFormat::Json, headings: false, ..Style::default() };
        assert_eq!(Printer::default().format(&m, &js), "[\"map\",[[\"a\",\"b c\"]]]\n");
    }
}
