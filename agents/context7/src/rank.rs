//! Choosing the library: Context7's search ranks by relevance to the task;
//! the agent re-ranks by how well the name matches, how much documentation
//! there is and how trusted the source is, and says why.

use serde::Serialize;

use crate::JsonSchema;
use crate::api::Library;

/// A search result with its score and the reasons for it.
#[derive(Debug, Clone)]
pub struct Scored {
    pub library: Library,
    pub score: f64,
    pub reasons: Vec<String>,
}

/// An alternative that was not chosen.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    /// Its Context7 id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its score (higher is better), to compare with the chosen one's.
    pub score: f64,
    /// What counted for and against it.
    pub why: String,
}

/// Trust as the reference client labels it.
pub fn trust_label(trust: Option<f64>) -> &'static str {
    match trust {
        Some(t) if t >= 7.0 => "High",
        Some(t) if t >= 4.0 => "Medium",
        Some(t) if t >= 0.0 => "Low",
        _ => "Unknown",
    }
}

/// Letters and digits only, lowercased: `Next.js` and `nextjs` compare equal.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn score(name: &str, library: Library) -> Scored {
    let wanted = normalize(name);
    let title = library.title.clone().unwrap_or_default();
    let repo = library
        .id
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut reasons = Vec::new();
    let mut score = 0.0;
    let (t, r) = (normalize(&title), normalize(&repo));
    if !wanted.is_empty() && (t == wanted || r == wanted) {
        score += 3.0;
        reasons.push(format!("its name matches \"{name}\" exactly"));
    } else if !wanted.is_empty()
        && [&t, &r]
            .iter()
            .any(|n| !n.is_empty() && (n.contains(&wanted) || wanted.contains(n.as_str())))
    {
        score += 1.5;
        reasons.push(format!("its name partly matches \"{name}\""));
    } else {
        reasons.push(format!("its name does not match \"{name}\""));
    }
    // Documentation volume, on a log scale: 10,000 snippets count as full.
    let snippets = library.total_snippets.unwrap_or(0.0).max(0.0);
    score += 2.0 * ((1.0 + snippets).ln() / (10_001f64).ln()).min(1.0);
    reasons.push(format!("{} snippets", snippets as u64));
    let trust = library.trust_score.filter(|t| t.is_finite() && *t >= 0.0);
    score += 2.0 * trust.map_or(0.25, |t| (t / 10.0).min(1.0));
    reasons.push(match trust {
        Some(t) => format!("trust {t} ({})", trust_label(Some(t))),
        None => "trust unknown".to_string(),
    });
    Scored {
        library,
        score: (score * 100.0).round() / 100.0,
        reasons,
    }
}

/// Usable libraries best first (ties keep Context7's order), and the
/// unusable ones (still indexing, failed) with the reason.
pub fn rank(name: &str, libraries: Vec<Library>) -> (Vec<Scored>, Vec<Alternative>) {
    let (usable, unusable): (Vec<Library>, Vec<Library>) =
        libraries.into_iter().partition(Library::usable);
    let mut scored: Vec<Scored> = usable.into_iter().map(|l| score(name, l)).collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    let skipped = unusable
        .into_iter()
        .map(|l| Alternative {
            title: l.title.clone().unwrap_or_default(),
            why: format!(
                "not usable yet: Context7 reports its state as `{}`",
                l.state.as_deref().unwrap_or_default()
            ),
            id: l.id,
            score: 0.0,
        })
        .collect();
    (scored, skipped)
}

impl Scored {
    /// Why this one was chosen, in one sentence.
    pub fn because(&self) -> String {
        format!(
            "{} scored {} of 7: {}",
            self.library.id,
            self.score,
            self.reasons.join("; ")
        )
    }

    pub fn as_alternative(&self) -> Alternative {
        Alternative {
            id: self.library.id.clone(),
            title: self.library.title.clone().unwrap_or_default(),
            score: self.score,
            why: self.reasons.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(id: &str, title: &str, snippets: f64, trust: Option<f64>) -> Library {
        Library {
            id: id.into(),
            title: Some(title.into()),
            total_snippets: Some(snippets),
            trust_score: trust,
            state: Some("finalized".into()),
            ..Library::default()
        }
    }

    #[test]
    fn an_exact_name_counts_most_then_volume_and_trust() {
        let (ranked, skipped) = rank(
            "axum",
            vec![
                lib("/big/axum-extras", "axum extras", 9000.0, Some(9.0)),
                lib("/tokio-rs/axum", "axum", 900.0, Some(9.5)),
                lib("/fork/axum", "axum", 900.0, Some(2.0)),
                Library {
                    state: Some("processing".into()),
                    ..lib("/new/axum", "axum", 1.0, None)
                },
            ],
        );
        let ids: Vec<&str> = ranked.iter().map(|s| s.library.id.as_str()).collect();
        // A well-documented, trusted partial match beats an untrusted fork.
        assert_eq!(ids, ["/tokio-rs/axum", "/big/axum-extras", "/fork/axum"]);
        assert!(ranked[0].because().contains("matches \"axum\" exactly"));
        assert!(ranked[0].because().contains("trust 9.5 (High)"));
        assert_eq!(skipped[0].id, "/new/axum");
        assert!(skipped[0].why.contains("processing"));
    }

    #[test]
    fn trust_labels_follow_the_reference_client() {
        assert_eq!(trust_label(Some(7.0)), "High");
        assert_eq!(trust_label(Some(4.5)), "Medium");
        assert_eq!(trust_label(Some(0.0)), "Low");
        assert_eq!(trust_label(Some(-1.0)), "Unknown");
        assert_eq!(trust_label(None), "Unknown");
    }
}
