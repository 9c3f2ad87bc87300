//! The benchmark's output: one table row per figure, printed as it is measured and again
//! as a whole at the end.

/// One measured figure, side by side.
pub(crate) struct Row {
    /// What was measured, with its unit.
    pub(crate) figure: String,
    /// ruroco's value.
    pub(crate) ours: String,
    /// The bare floor any program pays (a `recvmmsg` loop, `/bin/true`), if there is one.
    pub(crate) floor: String,
    /// fwknop's value in the same run, if it is installed.
    pub(crate) fwknop: String,
    /// The goal, if the figure has one.
    pub(crate) goal: String,
}

/// All rows so far.
#[derive(Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Records a row and prints it at once, so a long run shows progress.
    pub(crate) fn add(&mut self, row: Row) {
        println!(
            "  {}: ruroco {} | floor {} | fwknop {} | goal {}",
            row.figure, row.ours, row.floor, row.fwknop, row.goal
        );
        self.rows.push(row);
    }

    /// The whole table in Markdown.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from(
            "| figure | ruroco | floor | fwknop | goal |\n| --- | --- | --- | --- | --- |\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.figure, r.ours, r.floor, r.fwknop, r.goal
            ));
        }
        out
    }
}

/// A value with a fixed number of decimals, or "–" when there is none.
pub(crate) fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}
