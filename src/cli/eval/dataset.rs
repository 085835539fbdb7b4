//! Evaluation of text-to-triples extraction on datasets in the EDC layout.
//!
//! Entry points: [`Dataset::load`] reads `DIR/datasets/NAME.txt` (one text per line),
//! `DIR/evaluate/references/NAME.txt` (one Python-literal list of triples per line) and
//! `DIR/schemas/NAME_schema.csv` (`relation,definition`); [`super::webnlg::score`] is the metric.

use super::webnlg::Triple;
use std::path::Path;

/// A dataset in the EDC layout.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The texts.
    pub texts: Vec<String>,
    /// Gold triples per text.
    pub gold: Vec<Vec<Triple>>,
    /// Schema relations: name and definition.
    pub schema: Vec<(String, String)>,
}

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DatasetError {
    /// The file.
    pub path: String,
    /// What is wrong (with the line number where it applies).
    pub message: String,
}

impl Dataset {
    /// Reads dataset `name` under `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, DatasetError> {
        let read = |rel: String| -> Result<(String, String), DatasetError> {
            let p = dir.join(&rel);
            let shown = p.display().to_string();
            std::fs::read_to_string(&p)
                .map(|s| (shown.clone(), s))
                .map_err(|e| DatasetError {
                    path: shown,
                    message: e.to_string(),
                })
        };
        let (_, texts) = read(format!("datasets/{name}.txt"))?;
        let (refs_path, refs) = read(format!("evaluate/references/{name}.txt"))?;
        let (schema_path, schema) = read(format!("schemas/{name}_schema.csv"))?;
        let texts: Vec<String> = texts.lines().map(str::to_owned).collect();
        let mut gold = Vec::new();
        for (i, line) in refs.lines().enumerate() {
            gold.push(parse_triples(line).map_err(|m| DatasetError {
                path: refs_path.clone(),
                message: format!("line {}: {m}", i + 1),
            })?);
        }
        if gold.len() != texts.len() {
            return Err(DatasetError {
                path: refs_path,
                message: format!("{} reference lines for {} texts", gold.len(), texts.len()),
            });
        }
        let mut relations = Vec::new();
        for (i, line) in schema.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (r, d) = line.split_once(',').ok_or_else(|| DatasetError {
                path: schema_path.clone(),
                message: format!("line {}: expected relation,definition", i + 1),
            })?;
            relations.push((r.trim().to_owned(), d.trim().trim_matches('"').to_owned()));
        }
        Ok(Self {
            texts,
            gold,
            schema: relations,
        })
    }
}

/// Parses a Python literal list of string triples: `[['a', 'b', 'c'], ["d", 'e', 'f']]`.
pub fn parse_triples(line: &str) -> Result<Vec<Triple>, String> {
    let mut p = Lit {
        s: line.trim().chars().collect(),
        i: 0,
    };
    let outer = p.list(|p| p.list(Lit::string))?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing text at column {}", p.i + 1));
    }
    outer
        .into_iter()
        .map(|t| {
            <[String; 3]>::try_from(t).map_err(|t| format!("a triple of {} elements", t.len()))
        })
        .collect()
}

struct Lit {
    s: Vec<char>,
    i: usize,
}

impl Lit {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        if !self.eat('[') {
            return Err(format!("expected '[' at column {}", self.i + 1));
        }
        let mut out = Vec::new();
        if self.eat(']') {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(',') {
                if self.eat(']') {
                    return Ok(out);
                }
                continue;
            }
            if self.eat(']') {
                return Ok(out);
            }
            return Err(format!("expected ',' or ']' at column {}", self.i + 1));
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let q = match self.s.get(self.i) {
            Some(&c @ ('\'' | '"')) => c,
            _ => return Err(format!("expected a string at column {}", self.i + 1)),
        };
        self.i += 1;
        let mut out = String::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                '\\' => {
                    let e = self.s.get(self.i).copied().unwrap_or('\\');
                    self.i += 1;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                c if c == q => return Ok(out),
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals() {
        let t = parse_triples(
            r#"[['A_b', 'rel', '"1983-10-03"'], ["People's_Republic", 'x', 'y\'z']]"#,
        )
        .expect("parses");
        assert_eq!(t[0][2], "\"1983-10-03\"");
        assert_eq!(t[1][0], "People's_Republic");
        assert_eq!(t[1][2], "y'z");
        assert!(parse_triples("[['a', 'b']]").is_err());
        assert!(parse_triples("[['a', 'b', 'c']").is_err());
        assert_eq!(parse_triples("[]").expect("empty"), Vec::<Triple>::new());
    }
}
