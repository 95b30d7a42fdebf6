"""Real prose for the search benchmark: text nobody here wrote.

The corpus is the documentation a Debian machine carries: the manual pages
(English, and every other language installed: Russian, Japanese, German,
Korean, ...), rendered by man(1), and the text, Markdown and reStructuredText
files under /usr/share/doc. It holds code, URLs, e-mail addresses, option
names, numbers and hyphenated words, as users' deliberations do.

A prose fixture is a `council-loader sample` file (the app's layout, its row
counts and timestamps) whose searchable text (titles, user messages, stage 1
and stage 3 responses) is replaced by paragraphs of that corpus, drawn by a
seeded generator: the same corpus gives the same file.
"""

import concurrent.futures
import gzip
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess

MAN_ROOT = "/usr/share/man"
DOC_ROOT = "/usr/share/doc"
# One English page in EVERY, sections 1, 5, 7 and 8; every translated page.
EVERY = 4
DOC_SUFFIXES = (".txt", ".md", ".rst", ".txt.gz", ".md.gz", ".rst.gz")


def man_pages():
    english, translated = [], []
    for root, dirs, files in os.walk(MAN_ROOT):
        dirs.sort()
        section = os.path.basename(root)
        if section not in ("man1", "man5", "man7", "man8"):
            continue
        pages = sorted(os.path.join(root, f) for f in files)
        if os.path.dirname(root) == MAN_ROOT:
            english += pages[::EVERY]
        else:
            translated += pages
    return english + translated


def doc_files():
    found = []
    for root, dirs, files in os.walk(DOC_ROOT):
        dirs.sort()
        for name in sorted(files):
            lower = name.lower()
            if lower.endswith(DOC_SUFFIXES) or lower.startswith("readme"):
                if "changelog" not in lower and "copyright" not in lower:
                    found.append(os.path.join(root, name))
    return found


def render_man(path):
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    try:
        page = subprocess.run(["man", "-l", path], env=env, capture_output=True, timeout=60).stdout
        plain = subprocess.run(["col", "-bx"], input=page, capture_output=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return ""
    return plain.decode("utf-8", "replace")


def read_doc(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read(2_000_000)
        else:
            with open(path, "rb") as f:
                data = f.read(2_000_000)
    except OSError:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def paragraphs(text):
    """Blank-line separated blocks, dedented, of a length a message has."""
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        indent = min(len(line) - len(line.lstrip()) for line in lines)
        block = "\n".join(line[indent:] for line in lines)
        letters = sum(c.isalpha() for c in block)
        if 80 <= len(block) <= 3000 and letters > len(block) / 2:
            yield block


def corpus(cache):
    """The corpus's paragraphs, built once per machine into `cache`."""
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "prose-corpus.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    pages = man_pages()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        texts = list(pool.map(render_man, pages))
    texts += [read_doc(p) for p in doc_files()]
    seen, found = set(), []
    for text in texts:
        for p in paragraphs(text):
            if p not in seen:
                seen.add(p)
                found.append(p)
    if len(found) < 1000:
        raise SystemExit(f"only {len(found)} paragraphs of documentation on this machine: "
                         "install manual pages (apt-get install man-db manpages) for a prose corpus")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(found, f, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    return found


def fixture(sample_path, paragraphs_, out_path, seed=1):
    """A copy of the sample with real prose in every searchable column."""
    if os.path.exists(out_path):
        return out_path
    tmp = out_path + ".tmp"
    shutil.copyfile(sample_path, tmp)
    rng = random.Random(seed)
    pick = lambda: paragraphs_[rng.randrange(len(paragraphs_))]

    def body(low, high):
        return "\n\n".join(pick() for _ in range(rng.randint(low, high)))

    def title():
        words = re.findall(r"\w[\w'-]*", pick())
        return " ".join(words[: rng.randint(3, 8)]) or "Untitled"

    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = OFF")
    replacements = [
        ("SELECT id FROM conversations WHERE title IS NOT NULL ORDER BY rowid",
         "UPDATE conversations SET title = ? WHERE id = ?", title),
        ("SELECT id FROM messages WHERE role = 'user' AND content IS NOT NULL ORDER BY id",
         "UPDATE messages SET content = ? WHERE id = ?", pick),
        ("SELECT id FROM stage1_responses ORDER BY id",
         "UPDATE stage1_responses SET response = ? WHERE id = ?", lambda: body(2, 6)),
        ("SELECT id FROM stage3_synthesis ORDER BY id",
         "UPDATE stage3_synthesis SET response = ? WHERE id = ?", lambda: body(2, 5)),
    ]
    for select, update, text in replacements:
        ids = [r[0] for r in conn.execute(select).fetchall()]
        conn.executemany(update, [(text(), i) for i in ids])
    conn.commit()
    conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_path)
    return out_path


# Words neither engine should be asked for alone: PostgreSQL's 'english'
# drops its stop words, FTS5 has none, so the two would not answer alike.
STOP = set("""a about above after again against all am an and any are as at be because been before being
below between both but by can did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with you your yours yourself yourselves""".split())

WORD = re.compile(r"\w+")


def words_of(text):
    return [w for w in WORD.findall(text.lower()) if not w.isdigit()]


def usable(word):
    return len(word) >= 4 and word not in STOP and "_" not in word


def tokenized(documents):
    """Each document's words, and each word's document frequency."""
    df = {}
    tokens = []
    for key, text in documents:
        words = words_of(text)
        tokens.append((key, words))
        for w in set(words):
            df[w] = df.get(w, 0) + 1
    return tokens, df


def queries(documents, rng, per_class=10):
    """(class, websearch query for council_search, FTS5 query) for each
    query class, drawn from the documents' own words."""
    tokens, df = tokenized(documents)
    n = len(documents)
    latin = [w for w in df if usable(w) and w.isascii() and w.isalpha()]
    by_df = sorted(latin, key=lambda w: (-df[w], w))
    common = by_df[20:220]
    middle = [w for w in latin if n * 0.002 <= df[w] <= n * 0.02]
    rare = [w for w in latin if 2 <= df[w] <= 4]
    non_latin = sorted(w for w in df if not w.isascii() and w.isalpha() and len(w) >= 3 and df[w] >= 2)
    out = []

    def add(label, web, fts):
        out.append((label, web, fts))

    quote = lambda w: '"' + w.replace('"', '""') + '"'
    for w in rng.sample(sorted(middle), min(per_class, len(middle))):
        add("one word", w, quote(w))
    for _ in range(per_class):
        key, words = rng.choice(tokens)
        pool = sorted({w for w in words if w in df and usable(w) and w.isalpha() and df[w] <= n * 0.05})
        if len(pool) >= 3:
            chosen = rng.sample(pool, 3)
            add("several words", " ".join(chosen), " ".join(quote(w) for w in chosen))
    for _ in range(per_class):
        key, words = rng.choice(tokens)
        pairs = [(a, b) for a, b in zip(words, words[1:]) if usable(a) and usable(b) and a.isalpha() and b.isalpha()]
        if pairs:
            a, b = rng.choice(pairs)
            add("phrase", f'"{a} {b}"', quote(f"{a} {b}"))
    for w in rng.sample(sorted(rare), min(per_class, len(rare))):
        add("rare term", w, quote(w))
    for w in rng.sample(common, min(per_class, len(common))):
        add("common term", w, quote(w))
    for w in rng.sample(common, min(per_class, len(common)) if middle else 0):
        minus = rng.choice(sorted(middle))
        add("-word", f"{w} -{minus}", f"{quote(w)} NOT {quote(minus)}")
    for w in rng.sample(non_latin, min(per_class, len(non_latin))):
        add("non-Latin", w, quote(w))
    return out


def known_items(documents, rng, count=100):
    """Known-item queries: three of a stage 1 response's rarer words, and
    that response's key."""
    tokens, df = tokenized(documents)
    stage1 = [(key, words) for key, words in tokens if key[0] == "stage1"]
    out = []
    for key, words in rng.sample(stage1, min(count, len(stage1))):
        words = sorted({w for w in words if usable(w) and w.isalpha() and df[w] >= 2},
                       key=lambda w: (df[w], w))
        if len(words) >= 3:
            chosen = words[:3]
            out.append((" ".join(chosen), " ".join('"' + w + '"' for w in chosen), key))
    return out
