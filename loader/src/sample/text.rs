//! Prose that looks like what users ask and what council models answer:
//! markdown with headings, lists, tables and code, in several languages,
//! with the characters an importer gets wrong (quotes, backslashes,
//! newlines, accents, CJK, emoji outside the BMP).

use super::rng::Rng;

pub(super) struct Topic {
    pub(super) title: &'static str,
    pub(super) questions: &'static [&'static str],
    /// Noun phrases the prose is built around; `{}` in templates takes one.
    pub(super) keywords: &'static [&'static str],
    pub(super) technical: bool,
}

pub(super) const TOPICS: &[Topic] = &[
    Topic {
        title: "Postgres vs SQLite for a small SaaS",
        questions: &[
            "We run a small SaaS on SQLite (about 2 GB, 40 req/s). When does it make sense to move to PostgreSQL?",
            "Is \"just use Postgres\" good advice for a 3-person team? Our data is in data\\council.db right now.",
        ],
        keywords: &["write-ahead logging", "connection pooling", "the WAL file", "row-level locking", "logical replication", "VACUUM", "pg_dump", "a single writer", "foreign keys", "backups"],
        technical: true,
    },
    Topic {
        title: "Explain Rust lifetimes",
        questions: &[
            "Can someone explain Rust lifetimes like I'm five? The borrow checker keeps saying `'a` does not live long enough.",
            "Why does this fail?\n\nfn first<'a>(v: &'a Vec<String>) -> &'a str { &v[0] }\n\nThe compiler says \"borrowed value does not live long enough\".",
        ],
        keywords: &["the borrow checker", "lifetime elision", "a dangling reference", "`&'static str`", "ownership", "the stack frame", "`Rc<RefCell<T>>`", "non-lexical lifetimes"],
        technical: true,
    },
    Topic {
        title: "東京で三日間の旅行プラン",
        questions: &[
            "東京で三日間の旅行プランを作ってください。予算は一日一万五千円くらいです。",
            "Plan a 3-day trip to Tokyo (東京) in April — we love food and quiet temples.",
        ],
        keywords: &["浅草寺", "築地場外市場", "the Yamanote line", "a Suica card", "新宿御苑", "ramen in 池袋", "cherry blossoms (桜)", "the JR Pass", "明治神宮"],
        technical: false,
    },
    Topic {
        title: "Café au lait vs. flat white ☕",
        questions: &[
            "What's the real difference between a café au lait, a flat white and a latte? My barista in Zürich says they're \"basically the same\".",
        ],
        keywords: &["microfoam", "a double ristretto", "café au lait", "steamed milk", "the crema", "Zürich cafés", "oat milk", "the cup size"],
        technical: false,
    },
    Topic {
        title: "Regex for Windows paths",
        questions: &[
            "I need a regex that matches Windows paths like C:\\Users\\zoë\\Documents\\report (final).docx but not UNC paths like \\\\server\\share. Python please.",
        ],
        keywords: &["a raw string", "the backslash", "`re.VERBOSE`", "UNC paths", "drive letters", "`pathlib.PureWindowsPath`", "escape sequences", "Unicode file names"],
        technical: true,
    },
    Topic {
        title: "Compare bcrypt, scrypt and Argon2",
        questions: &[
            "For hashing API keys and passwords in 2025: bcrypt, scrypt or Argon2id? What cost parameters?",
        ],
        keywords: &["Argon2id", "the work factor", "bcrypt's 72-byte limit", "memory hardness", "a pepper", "GPU cracking", "timing attacks", "key stretching"],
        technical: true,
    },
    Topic {
        title: "Learning piano as an adult 🎹",
        questions: &[
            "I'm 41 and want to learn piano. Apps, a teacher, or YouTube? I have 20 minutes a day.",
        ],
        keywords: &["sight-reading", "a weighted keyboard", "scales and arpeggios", "a good teacher", "deliberate practice", "Für Elise", "hand independence", "the metronome"],
        technical: false,
    },
    Topic {
        title: "¿Cómo funciona la fotosíntesis?",
        questions: &[
            "¿Cómo funciona la fotosíntesis? Explícamelo para un examen de biología de secundaria.",
        ],
        keywords: &["la clorofila", "el ciclo de Calvin", "light-dependent reactions", "el dióxido de carbono", "ATP and NADPH", "los cloroplastos", "la glucosa", "stomata"],
        technical: false,
    },
    Topic {
        title: "Kubernetes liveness vs readiness probes",
        questions: &[
            "Our pods restart in a loop after deploy. Should the DB check be in the liveness or the readiness probe?",
        ],
        keywords: &["the readiness probe", "the liveness probe", "a startup probe", "cascading restarts", "`initialDelaySeconds`", "the service mesh", "graceful shutdown", "SIGTERM"],
        technical: true,
    },
    Topic {
        title: "Selling RSUs: tax questions",
        questions: &[
            "My RSUs vested at $142 and are now $118. If I sell, do I get a loss? (US, single filer, ~€ income from a side gig too)",
        ],
        keywords: &["the cost basis", "a wash sale", "short-term capital gains", "withholding at vest", "tax-loss harvesting", "Form 8949", "the vest date", "foreign income"],
        technical: false,
    },
    Topic {
        title: "Напиши короткое стихотворение",
        questions: &[
            "Напиши короткое стихотворение о зиме в Москве.",
            "Write a short poem about winter in Moscow (по-русски, пожалуйста).",
        ],
        keywords: &["снег", "the frozen river", "зимний вечер", "a tram at dusk", "тишина", "rhythm and rhyme", "iambic meter", "Пушкин"],
        technical: false,
    },
    Topic {
        title: "Marathon meal plan",
        questions: &[
            "Give me a meal plan for the last 7 days before my first marathon. I'm vegetarian and hate bananas 🍌.",
        ],
        keywords: &["carb loading", "glycogen stores", "electrolytes", "race-day breakfast", "jalapeño-free meals", "gels every 45 min", "hydration", "fiber intake"],
        technical: false,
    },
    Topic {
        title: "The Monty Hall problem",
        questions: &[
            "Why is switching better in the Monty Hall problem? It still feels like 50/50 to me.",
        ],
        keywords: &["conditional probability", "the host's knowledge", "Bayes' theorem", "a 2/3 chance", "the 100-door version", "a simulation", "the naïve intuition", "the prior"],
        technical: false,
    },
    Topic {
        title: "Résumé for a career change",
        questions: &[
            "I'm a teacher moving into data analysis. How should I write my résumé? Should I hide the 10 years of teaching?",
        ],
        keywords: &["transferable skills", "a portfolio project", "the summary section", "SQL and Python", "quantified achievements", "ATS filters", "a cover letter", "the résumé"],
        technical: false,
    },
    Topic {
        title: "Refactor this Python function",
        questions: &[
            "Can you refactor this?\n\ndef load(p):\n    f = open(p)\n    d = json.load(f)\n    return [x for x in d if x[\"ok\"] == True]\n\nIt feels un-Pythonic.",
        ],
        keywords: &["a context manager", "`pathlib.Path`", "type hints", "truthiness", "a generator expression", "error handling", "`json.loads`", "the encoding argument"],
        technical: true,
    },
    Topic {
        title: "Causes of the First World War",
        questions: &[
            "Summarize the main causes of WWI in a way that isn't just \"M.A.I.N.\" — my teacher wants nuance.",
        ],
        keywords: &["the July Crisis", "the alliance system", "Sarajevo", "mobilization timetables", "the naval arms race", "nationalism in the Balkans", "Realpolitik", "the Schlieffen Plan"],
        technical: false,
    },
];

const OPENERS: &[&str] = &[
    "In practice,",
    "The short answer is that",
    "It is worth noting that",
    "Generally speaking,",
    "A common mistake is assuming that",
    "From a cost perspective,",
    "Historically,",
    "In my assessment,",
    "Put simply,",
    "One caveat:",
    "Most guides skip this, but",
    "If you only remember one thing,",
    "Counter-intuitively,",
    "For your situation specifically,",
];

const VERBS: &[&str] = &[
    "depends heavily on",
    "interacts with",
    "is usually cheaper than",
    "tends to matter more than",
    "should be weighed against",
    "can often replace",
    "is frequently confused with",
    "scales better than",
    "requires careful handling of",
    "is a sensible default alongside",
    "is only as good as",
    "gets much easier once you understand",
];

const TAILS: &[&str] = &[
    "",
    "",
    " in most real-world cases",
    " when the workload is read-heavy",
    ", especially at scale",
    " — but only up to a point",
    " (see the table below)",
    ", which matters more than people expect",
    " for the typical user",
    " in the long run",
    " – even if it feels counter-intuitive",
];

const SPRINKLES: &[&str] = &[
    " ✅",
    " ⚠️",
    " 🚀",
    " 💡",
    " (≈ 30 % faster)",
    " → see below",
    " — naïve approaches fail here",
    " (“rule of thumb”, not a law)",
    " 👍🏽",
    " «à la carte»",
    " (~€20/month)",
    " (参考：東京の事例)",
    " — «Ça dépend»",
    " ½ the time",
];

const CODE: &[&str] = &[
    "```python\nimport re\n\nWIN_PATH = re.compile(r\"^[A-Za-z]:\\\\(?:[^\\\\/:*?\\\"<>|\\r\\n]+\\\\)*[^\\\\/:*?\\\"<>|\\r\\n]*$\")\nprint(\"match:\\t\", bool(WIN_PATH.match(\"C:\\\\Users\\\\zoë\\\\notes.txt\")))\n```",
    "```sql\n-- keep the app's timestamps as text until they are parsed\nSELECT id, created_at\nFROM conversations\nWHERE created_at = '' OR created_at LIKE '%+00:00';\n```",
    "```rust\nfn first<'a>(v: &'a [String]) -> Option<&'a str> {\n    v.first().map(|s| s.as_str()) // no clone, no dangling \\n\n}\n```",
    "```bash\nsqlite3 data/council.db \"PRAGMA wal_checkpoint(TRUNCATE);\"\nprintf '%s\\n' \"done: $(date -u +%FT%TZ)\"\n```",
    "```yaml\nreadinessProbe:\n  httpGet:\n    path: /healthz/ready\n    port: 8080\n  periodSeconds: 5\nlivenessProbe:\n  httpGet: {path: /healthz/live, port: 8080}\n```",
    "```python\nfrom pathlib import Path\nimport json\n\ndef load(path: Path) -> list[dict]:\n    with path.open(encoding=\"utf-8\") as f:\n        return [row for row in json.load(f) if row.get(\"ok\")]\n```",
    "```json\n{\"model\": \"openai/gpt-5\", \"temperature\": 0.7, \"stop\": [\"\\n\\n\"]}\n```",
];

const TABLE_HEADS: &[&str] = &[
    "| Option | Pros | Cons |\n|---|---|---|",
    "| Criterion | Score | Notes |\n|:--|:-:|--:|",
    "| Day | Morning | Evening |\n|---|---|---|",
];

const FOLLOW_UPS: &[&str] = &[
    "Can you go deeper on {}?",
    "Thanks! What about \"{}\" vs {}?",
    "I tried that and got: `error: path C:\\temp\\out\\ not found` — any idea?",
    "Merci ! Et pour {} ?",
    "ok but shorter please 🙏",
    "Wait, isn't {} the opposite of what the first answer said?",
    "Can you put that in a table?\nColumns: option, cost, risk.",
    "Explain {} again, my colleague (田中さん) didn't get it.",
    "What would you do in my place? Be honest, no \"it depends\".",
    "Give me a checklist.\n\n1. {}\n2. {}\n3. ???",
    "Hmm. Sources? I read the opposite on a blog about {}.",
    "¿Y si el presupuesto es la mitad?",
];

const TITLE_SUFFIXES: &[&str] = &[
    "",
    "",
    "",
    " (follow-up)",
    " – notes",
    " 2",
    ": quick question",
];

fn push_keyword_filled(out: &mut String, rng: &mut Rng, template: &str, keywords: &[&str]) {
    let mut parts = template.split("{}");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push_str(rng.pick(keywords));
        out.push_str(part);
    }
}

fn push_capitalized(out: &mut String, s: &str) {
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
        out.push_str(chars.as_str());
    }
}

/// Two different keywords, so a sentence never compares a thing with itself.
fn two_keywords(rng: &mut Rng, keywords: &[&'static str]) -> (&'static str, &'static str) {
    let n = keywords.len() as u64;
    let a = rng.below(n);
    let mut b = rng.below(n.saturating_sub(1).max(1));
    if b >= a && n > 1 {
        b += 1;
    }
    (keywords[a as usize], keywords[b as usize])
}

fn sentence(out: &mut String, rng: &mut Rng, topic: &Topic) {
    let (subject, object) = two_keywords(rng, topic.keywords);
    if rng.percent(70) {
        out.push_str(rng.pick(OPENERS));
        out.push(' ');
        out.push_str(subject);
    } else {
        push_capitalized(out, subject);
    }
    out.push(' ');
    out.push_str(rng.pick(VERBS));
    out.push(' ');
    out.push_str(object);
    out.push_str(rng.pick(TAILS));
    if rng.percent(6) {
        out.push_str(rng.pick(SPRINKLES));
    }
    if rng.percent(4) {
        out.push_str(", or as one reviewer put it, \"");
        out.push_str(rng.pick(topic.keywords));
        out.push_str(" isn't the problem\"");
    }
    out.push_str(match rng.below(20) {
        0 => "!",
        1 => "?",
        _ => ".",
    });
}

fn paragraph(out: &mut String, rng: &mut Rng, topic: &Topic) {
    let n = rng.range(2, 6);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        sentence(out, rng, topic);
    }
    out.push_str("\n\n");
}

fn list(out: &mut String, rng: &mut Rng, topic: &Topic, numbered: bool) {
    let n = rng.range(3, 6);
    for i in 1..=n {
        if numbered {
            out.push_str(&i.to_string());
            out.push_str(". ");
        } else {
            out.push_str("- ");
        }
        out.push_str("**");
        push_capitalized(out, rng.pick(topic.keywords));
        out.push_str("**: ");
        sentence(out, rng, topic);
        out.push('\n');
    }
    out.push('\n');
}

fn table(out: &mut String, rng: &mut Rng, topic: &Topic) {
    out.push_str(rng.pick(TABLE_HEADS));
    out.push('\n');
    for _ in 0..rng.range(2, 5) {
        out.push_str("| ");
        out.push_str(rng.pick(topic.keywords));
        out.push_str(" | ");
        out.push_str(&rng.range(1, 10).to_string());
        out.push_str("/10 | ");
        out.push_str(rng.pick(VERBS));
        out.push(' ');
        out.push_str(rng.pick(topic.keywords));
        out.push_str(" |\n");
    }
    out.push('\n');
}

/// A markdown answer of roughly `target` bytes (it stops after the block
/// that crosses the target).
pub(super) fn answer(out: &mut String, rng: &mut Rng, topic: &Topic, target: usize) {
    let start = out.len();
    paragraph(out, rng, topic);
    while out.len() - start < target {
        let code_weight = if topic.technical { 10 } else { 2 };
        match rng.weighted(&[40, 18, 14, 9, code_weight, 5, 4]) {
            0 => paragraph(out, rng, topic),
            1 => list(out, rng, topic, false),
            2 => {
                out.push_str(if rng.percent(50) { "## " } else { "### " });
                push_capitalized(out, rng.pick(topic.keywords));
                out.push_str("\n\n");
                paragraph(out, rng, topic);
            }
            3 => list(out, rng, topic, true),
            4 => {
                out.push_str(rng.pick(CODE));
                out.push_str("\n\n");
            }
            5 => table(out, rng, topic),
            _ => {
                out.push_str("> ");
                sentence(out, rng, topic);
                out.push_str("\n\n");
            }
        }
    }
    out.push_str("**Bottom line:** ");
    sentence(out, rng, topic);
}

pub(super) fn first_question(rng: &mut Rng, topic: &Topic) -> String {
    let mut out = String::from(rng.pick(topic.questions));
    if rng.percent(15) {
        out.push_str("\n\nContext: ");
        paragraph(&mut out, rng, topic);
        out.truncate(out.trim_end().len());
    }
    out
}

pub(super) fn follow_up(rng: &mut Rng, topic: &Topic) -> String {
    let mut out = String::new();
    let template = rng.pick(FOLLOW_UPS);
    push_keyword_filled(&mut out, rng, template, topic.keywords);
    out
}

pub(super) fn title(rng: &mut Rng, topic: &Topic) -> String {
    let mut out = String::from(topic.title);
    out.push_str(rng.pick(TITLE_SUFFIXES));
    out
}

pub(super) fn label(i: usize) -> String {
    let letter = char::from(b'A' + (i % 26) as u8);
    format!("Response {letter}")
}

/// An evaluator's critique ending, as the app's prompt demands, in a
/// `FINAL RANKING:` numbered list.
pub(super) fn raw_ranking(out: &mut String, rng: &mut Rng, topic: &Topic, order: &[usize]) {
    out.push_str(match rng.below(3) {
        0 => "I evaluated each response for accuracy, completeness and clarity.\n\n",
        1 => "Here is my assessment of the anonymized responses.\n\n",
        _ => "",
    });
    let mut labels: Vec<usize> = order.to_vec();
    labels.sort_unstable();
    for i in labels {
        if rng.percent(50) {
            out.push_str("**");
            out.push_str(&label(i));
            out.push_str("** — ");
        } else {
            out.push_str(&label(i));
            out.push_str(": ");
        }
        sentence(out, rng, topic);
        if rng.percent(60) {
            out.push(' ');
            sentence(out, rng, topic);
        }
        out.push_str("\n\n");
    }
    out.push_str("FINAL RANKING:\n");
    for (pos, i) in order.iter().enumerate() {
        out.push_str(&(pos + 1).to_string());
        out.push_str(". ");
        out.push_str(&label(*i));
        if pos + 1 < order.len() {
            out.push('\n');
        }
    }
}

pub(super) fn meta_evaluation(out: &mut String, rng: &mut Rng, topic: &Topic) {
    out.push_str("Meta-evaluation: the council ");
    out.push_str(if rng.percent(70) {
        "largely agreed. "
    } else {
        "was split. "
    });
    paragraph(out, rng, topic);
    out.truncate(out.trim_end().len());
}
