// Ranks Context7's search results for a library name: an exact name match
// counts most, then the volume of documentation, then trust. Scores run
// from 0 to 7. Mirrors agents/context7/src/rank.rs.
import { type Library, usable } from "./api.js";

export interface Scored {
  library: Library;
  score: number;
  reasons: string[];
}

/** A library considered and not chosen. */
export interface Alternative {
  id: string;
  title: string;
  score: number;
  why: string;
}

/** Context7's trust score (0–10) in words. */
export function trustLabel(trust: number | undefined): string {
  if (trust === undefined || !Number.isFinite(trust)) {
    return "Unknown";
  }
  if (trust >= 7) return "High";
  if (trust >= 4) return "Medium";
  if (trust >= 0) return "Low";
  return "Unknown";
}

/** ASCII letters and digits, lower-cased: `Next.js` → `nextjs`. */
function normalize(text: string): string {
  return text.replace(/[^A-Za-z0-9]/g, "").toLowerCase();
}

function score(name: string, library: Library): Scored {
  const wanted = normalize(name);
  const title = library.title ?? "";
  const repo = library.id.replace(/^\/+/, "").split("/")[1] ?? "";
  const reasons: string[] = [];
  let total = 0;
  const [t, r] = [normalize(title), normalize(repo)];
  if (wanted !== "" && (t === wanted || r === wanted)) {
    total += 3;
    reasons.push(`its name matches "${name}" exactly`);
  } else if (wanted !== "" && [t, r].some((n) => n !== "" && (n.includes(wanted) || wanted.includes(n)))) {
    total += 1.5;
    reasons.push(`its name partly matches "${name}"`);
  } else {
    reasons.push(`its name does not match "${name}"`);
  }
  const snippets = Math.max(0, library.totalSnippets ?? 0);
  total += 2 * Math.min(1, Math.log(1 + snippets) / Math.log(10_001));
  reasons.push(`${Math.trunc(snippets)} snippets`);
  const trust =
    library.trustScore !== undefined && Number.isFinite(library.trustScore) && library.trustScore >= 0
      ? library.trustScore
      : undefined;
  total += 2 * (trust === undefined ? 0.25 : Math.min(1, trust / 10));
  reasons.push(trust === undefined ? "trust unknown" : `trust ${trust} (${trustLabel(trust)})`);
  return { library, score: Math.round(total * 100) / 100, reasons };
}

/** Usable libraries scored, best first; the others as skipped alternatives. */
export function rank(name: string, libraries: Library[]): [Scored[], Alternative[]] {
  const scored = libraries.filter(usable).map((l) => score(name, l));
  // A stable sort, best first, as the Rust twin's.
  scored.sort((a, b) => b.score - a.score);
  const skipped = libraries
    .filter((l) => !usable(l))
    .map((l) => ({
      id: l.id,
      title: l.title ?? "",
      score: 0,
      why: `not usable yet: Context7 reports its state as \`${l.state ?? ""}\``,
    }));
  return [scored, skipped];
}

/** Why the best was chosen. */
export function because(s: Scored): string {
  return `${s.library.id} scored ${s.score} of 7: ${s.reasons.join("; ")}`;
}

export function asAlternative(s: Scored): Alternative {
  return { id: s.library.id, title: s.library.title ?? "", score: s.score, why: s.reasons.join("; ") };
}
