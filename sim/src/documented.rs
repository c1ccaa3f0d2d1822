//! The ten documented transitions, read from the documented front-end README kept
//! verbatim in `tests/data/`.

/// The documented README.
pub const FIXTURE: &str = include_str!("../../tests/data/documented_frontend_readme.md");

/// One documented transition: the pools as listed, and the lines logged (with the
/// `Paylod` typo corrected).
#[derive(Clone, Debug)]
pub struct Transition {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub lines: Vec<String>,
}

fn parse_pool(text: &str) -> Vec<String> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|id| id.trim().to_owned())
        .collect()
}

/// The transitions in documented order.
pub fn transitions() -> Vec<Transition> {
    let mut found = Vec::new();
    let mut lines = FIXTURE.lines();
    while let Some(line) = lines.next() {
        let Some((from, to)) = line.split_once(" -> ").filter(|_| line.starts_with('[')) else {
            continue;
        };
        if lines.next() != Some("```") {
            continue;
        }
        let logged = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(|l| l.replace("with Paylod ", "with Payload "))
            .collect();
        found.push(Transition {
            from: parse_pool(from),
            to: parse_pool(to),
            lines: logged,
        });
    }
    found
}
