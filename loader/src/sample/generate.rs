//! The content: one conversation at a time, each from its own PRNG stream,
//! rows inserted through prepared statements in the caller's transaction.

use std::ops::Range;

use rusqlite::{params, Connection, Statement};

use super::rng::{micros_at, timestamp, uuid_v4, Rng, TsForm, MICROS_PER_SEC};
use super::text::{self, Topic};
use super::{SampleOptions, SchemaVersion};
use council_app::python_json as json;

// The app's history, which decides how each conversation's rows look.
const START: i64 = micros_at(2024, 5, 1);
/// Before this, some conversations came in through the JSON migration.
const MIGRATION_END: i64 = micros_at(2024, 9, 1);
/// Before this the app used naive `utcnow()` timestamps.
const AWARE_FROM: i64 = micros_at(2024, 12, 1);
const NEW_MODELS_FROM: i64 = micros_at(2025, 3, 1);
/// API keys exist from here on (schema v2).
const API_FROM: i64 = micros_at(2025, 6, 1);
const V1_END: i64 = micros_at(2025, 5, 25);
const V2_END: i64 = micros_at(2026, 1, 20);

const SECOND: i64 = MICROS_PER_SEC;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

// Independent PRNG streams.
const STREAM_PLAN: u64 = 1;
const STREAM_CONTENT: u64 = 2;
const STREAM_TIME: u64 = 3;
const STREAM_KEYS: u64 = 4;
const STREAM_AUDIT: u64 = 5;

const OLD_MODELS: &[&str] = &[
    "openai/gpt-4o",
    "anthropic/claude-3.5-sonnet",
    "google/gemini-1.5-pro",
    "meta-llama/llama-3.1-405b-instruct",
    "x-ai/grok-2",
    "mistralai/mistral-large",
];
const NEW_MODELS: &[&str] = &[
    "openai/gpt-5",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-pro",
    "x-ai/grok-4",
    "deepseek/deepseek-r1",
    "meta-llama/llama-4-maverick",
    "moonshotai/kimi-k2",
];
const OLD_CHAIRMEN: &[&str] = &["google/gemini-1.5-pro", "anthropic/claude-3.5-sonnet"];
const NEW_CHAIRMEN: &[&str] = &[
    "google/gemini-2.5-pro",
    "anthropic/claude-opus-4.1",
    "openai/gpt-5",
];

const KEY_NAMES: &[&str] = &[
    "production backend",
    "staging",
    "CI pipeline",
    "Zoë's laptop",
    "analytics-export",
    "Slack bot 🤖",
    "data team (東京)",
    "load-test",
    "mobile app",
    "\"legacy\" integration",
    "n8n workflow",
    "personal",
];
const USER_AGENTS: &[&str] = &[
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "llm-council-cli/0.4.1",
    "httpx/0.27.0",
    "PostmanRuntime/7.39.0",
    "Go-http-client/2.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
];
const AUDIT_ACTIONS: &[&str] = &[
    "request",
    "rate_limited",
    "insufficient_permissions",
    "expired",
    "revoked",
];
const BCRYPT_ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct Statements<'c> {
    conversation: Statement<'c>,
    message: Statement<'c>,
    stage1: Statement<'c>,
    stage2: Statement<'c>,
    stage3: Statement<'c>,
    metadata: Statement<'c>,
    api_key: Option<Statement<'c>>,
    audit: Option<Statement<'c>>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection, schema: SchemaVersion) -> rusqlite::Result<Self> {
        let v2 = schema == SchemaVersion::V2;
        Ok(Statements {
            conversation: conn.prepare(
                "INSERT INTO conversations (id, title, created_at, updated_at, is_pinned, is_hidden, message_count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            message: conn.prepare(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            stage1: conn.prepare(
                "INSERT INTO stage1_responses (id, message_id, model, response, confidence, base_model, sample_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            stage2: conn.prepare(
                "INSERT INTO stage2_rankings (id, message_id, evaluator_model, raw_ranking, parsed_ranking, debate_round, rubric_scores, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            stage3: conn.prepare(
                "INSERT INTO stage3_synthesis (id, message_id, chairman_model, response, meta_evaluation, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            metadata: conn.prepare(
                "INSERT INTO deliberation_metadata (id, message_id, label_to_model, aggregate_rankings, consensus, features, stage1_consensus, debate_history, voting_method, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            api_key: if v2 {
                Some(conn.prepare(
                    "INSERT INTO api_keys (id, key_hash, key_prefix, name, created_at, last_used_at, expires_at, is_active, rate_limit_override, permissions, metadata) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?)
            } else {
                None
            },
            audit: if v2 {
                Some(conn.prepare(
                    "INSERT INTO api_key_audit_log (id, api_key_id, action, endpoint, ip_address, user_agent, request_id, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?)
            } else {
                None
            },
        })
    }
}

/// Index into `Generator::counts`, in table order.
#[derive(Clone, Copy)]
enum Table {
    Conversations,
    Messages,
    Stage1,
    Stage2,
    Stage3,
    Metadata,
    ApiKeys,
    Audit,
}

/// The generator's seed for one file: every stream depends on the size too,
/// so a conversation id drawn for one size never reappears, with other
/// content, in a file of another size.
fn file_seed(options: &SampleOptions) -> u64 {
    options
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        ^ options.conversations
}

/// Where a file's integer ids start: a block of 2^24 ids of its own for each
/// seed (below 2^12) and size (below 2^20), so that samples of other sizes
/// or seeds imported into one database never claim one another's ids.
fn id_base(options: &SampleOptions) -> i64 {
    let seed = (options.seed & 0xFFF) as i64;
    let size = (options.conversations & 0xF_FFFF) as i64;
    (seed << 44) | (size << 24)
}

/// Next explicit id per INTEGER-keyed table. Ids are assigned in insertion
/// order as AUTOINCREMENT would, with the gaps deleted conversations leave.
struct Ids {
    message: i64,
    stage1: i64,
    stage2: i64,
    stage3: i64,
    metadata: i64,
    audit: i64,
}

fn take(id: &mut i64) -> i64 {
    *id += 1;
    *id
}

struct ApiKey {
    id: i64,
    created: i64,
}

/// One council member's stage-1 identity.
struct Member {
    model: &'static str,
    base_model: Option<&'static str>,
    sample_id: Option<i64>,
}

pub(super) struct Generator {
    seed: u64,
    n: u64,
    schema: SchemaVersion,
    end: i64,
    /// Conversations with index ≡ this (mod 200) get caller-supplied ids.
    custom_offset: Option<u64>,
    upper_index: Option<u64>,
    forced_empty: Option<u64>,
    ids: Ids,
    /// The id before each integer-keyed table's first row.
    id_base: i64,
    keys: Vec<ApiKey>,
    counts: [u64; 8],
}

impl Generator {
    pub(super) fn new(options: &SampleOptions) -> Self {
        let n = options.conversations;
        let end = match options.schema {
            SchemaVersion::V1 => V1_END,
            SchemaVersion::V2 => V2_END,
        };
        let seed = file_seed(options);
        let mut plan = Rng::derive(seed, STREAM_PLAN, 0);
        let (custom_offset, upper_index) = if options.schema == SchemaVersion::V2 && n >= 50 {
            let offset = plan.below(n.min(200));
            let mut upper = plan.below(n);
            while upper % 200 == offset {
                upper = (upper + 1) % n;
            }
            (Some(offset), Some(upper))
        } else {
            (None, None)
        };
        // Guarantee at least one migrated conversation with '' timestamps
        // in any file big enough to be a realistic history.
        let legacy =
            (u128::from(n) * (MIGRATION_END - START) as u128 / (end - START) as u128) as u64;
        let forced_empty = if n >= 20 && legacy > 0 {
            Some(plan.below(legacy))
        } else {
            None
        };
        let base = id_base(options);
        Generator {
            seed,
            n,
            schema: options.schema,
            end,
            custom_offset,
            upper_index,
            forced_empty,
            ids: Ids {
                message: base,
                stage1: base,
                stage2: base,
                stage3: base,
                metadata: base,
                audit: base,
            },
            id_base: base,
            keys: Vec::new(),
            counts: [0; 8],
        }
    }

    /// Rows written so far per table, in table order.
    pub(super) fn counts(&self) -> [u64; 8] {
        self.counts
    }

    fn count(&mut self, table: Table) {
        self.counts[table as usize] += 1;
    }

    /// Writes conversations `range` (and, first, the API keys) in one
    /// transaction.
    pub(super) fn batch(
        &mut self,
        conn: &Connection,
        range: Range<u64>,
        with_keys: bool,
    ) -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN")?;
        {
            let mut st = Statements::prepare(conn, self.schema)?;
            if with_keys && self.schema == SchemaVersion::V2 {
                self.api_keys(&mut st)?;
            }
            for idx in range {
                self.conversation(idx, &mut st)?;
            }
        }
        conn.execute_batch("COMMIT")
    }

    fn api_keys(&mut self, st: &mut Statements<'_>) -> rusqlite::Result<()> {
        let Some(insert) = st.api_key.as_mut() else {
            return Ok(());
        };
        let mut rng = Rng::derive(self.seed, STREAM_KEYS, 0);
        let count = (self.n / 30).max(3);
        // The first key predates the first API conversation; the rest are
        // spread over the API era, in id order.
        let mut created: Vec<i64> = (0..count)
            .map(|i| {
                if i == 0 {
                    API_FROM - DAY + rng.below(HOUR as u64) as i64
                } else {
                    API_FROM + rng.below((self.end - API_FROM) as u64) as i64
                }
            })
            .collect();
        created.sort_unstable();
        for (i, created_at) in created.into_iter().enumerate() {
            let id = self.id_base + i as i64 + 1;
            let hash = random_token(&mut rng, "$2b$12$", BCRYPT_ALPHABET, 53);
            let prefix = random_token(&mut rng, "llmc_", TOKEN_ALPHABET, 7);
            let mut name = String::from(rng.pick(KEY_NAMES));
            if i >= KEY_NAMES.len() {
                name.push_str(&format!(" #{id}"));
            }
            let last_used = (!rng.percent(20)).then(|| {
                let t = created_at + rng.below((self.end - created_at).max(1) as u64) as i64;
                timestamp(t, TsForm::Aware)
            });
            let expires = (!rng.percent(85)).then(|| {
                let days = rng.pick(&[30i64, 90, 365]);
                timestamp(created_at + days * DAY, TsForm::Aware)
            });
            let active = i64::from(!rng.percent(15));
            let rate_limit = (!rng.percent(80)).then(|| rng.pick(&[30i64, 60, 120, 600, 1000]));
            let permissions = key_permissions_json(&mut rng);
            let metadata = (!rng.percent(40)).then(|| key_metadata_json(&mut rng));
            insert.execute(params![
                id,
                hash,
                prefix,
                name,
                timestamp(created_at, TsForm::SqliteDefault),
                last_used,
                expires,
                active,
                rate_limit,
                permissions,
                metadata,
            ])?;
            self.keys.push(ApiKey {
                id,
                created: created_at,
            });
            self.count(Table::ApiKeys);
        }
        Ok(())
    }

    fn conversation_id(&self, idx: u64, start: i64, rng: &mut Rng) -> String {
        // Always drawn, so that which ids are special never shifts the
        // content of the rest.
        let uuid = uuid_v4(rng, self.upper_index == Some(idx));
        if self.custom_offset.is_some_and(|o| idx % 200 == o) {
            let seq = idx / 200 + 1;
            let year = &timestamp(start, TsForm::Naive)[..4];
            match seq % 3 {
                1 => format!("import-{year}-{seq:04}"),
                2 => format!("slack-export-{seq:04}"),
                _ => format!("legacy_{year}_{seq}"),
            }
        } else {
            uuid
        }
    }

    fn conversation(&mut self, idx: u64, st: &mut Statements<'_>) -> rusqlite::Result<()> {
        let mut rng = Rng::derive(self.seed, STREAM_CONTENT, idx);
        let mut trng = Rng::derive(self.seed, STREAM_TIME, idx);
        let plan = self.plan(idx, &mut rng, &mut trng);

        // Deleted conversations leave holes in every id sequence.
        if rng.permille(15) {
            let gap = rng.range(1, 4) as i64;
            self.skip_ids(gap, plan.council.len() as i64);
        }

        // The timeline comes first because the conversation row, inserted
        // before its children, carries the last time as updated_at.
        let timeline = timeline(&mut trng, plan.start, plan.exchanges, plan.council.len());
        let updated = self.insert_conversation(st, &mut rng, &plan, timeline.last)?;

        let mut clock = Clock {
            times: timeline.times,
            next: 1,
            form: plan.form,
        };
        let mut out = RowWriter {
            st,
            rng: &mut rng,
            clock: &mut clock,
            body: String::with_capacity(8 * 1024),
        };
        for exchange in 0..plan.exchanges {
            self.exchange(&mut out, &plan, exchange)?;
        }

        if plan.start >= API_FROM {
            self.audit(st, idx, &plan.id, plan.start, &timeline.user_times, updated)?;
        }
        Ok(())
    }

    /// What conversation `idx` is: when it starts, its id, topic, council and
    /// length.
    fn plan(&self, idx: u64, rng: &mut Rng, trng: &mut Rng) -> Plan {
        // Conversations are created in order over the app's history, so the
        // newest ones are those a live copy has only in its -wal.
        let step = (self.end - START) / self.n.max(1) as i64;
        let start = START + step * idx as i64 + trng.below((step * 3 / 4).max(1) as u64) as i64;
        let form = if self.forced_empty == Some(idx) || (start < MIGRATION_END && rng.percent(10)) {
            TsForm::Empty
        } else if start < AWARE_FROM {
            TsForm::Naive
        } else {
            TsForm::Aware
        };
        let modern = start >= AWARE_FROM;
        let id = self.conversation_id(idx, start, rng);
        let topic: &'static Topic = rng.pick_ref(text::TOPICS);
        let exchanges = 1 + rng.weighted(&[20, 25, 25, 15, 15]);
        let council = council(rng, start);
        let chairman = rng.pick(if start < NEW_MODELS_FROM {
            OLD_CHAIRMEN
        } else {
            NEW_CHAIRMEN
        });
        let voting = if modern {
            Some(["borda", "mrr", "confidence_weighted"][rng.weighted(&[60, 20, 20])])
        } else if rng.percent(70) {
            Some("borda")
        } else {
            None
        };
        Plan {
            start,
            form,
            modern,
            id,
            topic,
            exchanges,
            council,
            chairman,
            voting,
        }
    }

    /// Skips the ids `gap` deleted exchanges with `k` council members took.
    fn skip_ids(&mut self, gap: i64, k: i64) {
        self.ids.message += 2 * gap;
        self.ids.stage1 += gap * k;
        self.ids.stage2 += gap * k;
        self.ids.stage3 += gap;
        self.ids.metadata += gap;
    }

    /// Inserts the conversation's row, last changed at `last` or, renamed or
    /// pinned later, after it; returns when that was.
    fn insert_conversation(
        &mut self,
        st: &mut Statements<'_>,
        rng: &mut Rng,
        plan: &Plan,
        last: i64,
    ) -> rusqlite::Result<i64> {
        let updated = if rng.percent(10) {
            last + rng.range(MINUTE as u64, 3 * DAY as u64) as i64
        } else {
            last
        };
        let title = if rng.percent(10) {
            String::from("New Conversation")
        } else {
            text::title(rng, plan.topic)
        };
        let mut message_count = 2 * plan.exchanges as i64;
        if rng.permille(10) {
            message_count += if rng.percent(70) { 1 } else { -1 };
        }
        st.conversation.execute(params![
            plan.id,
            title,
            timestamp(plan.start, plan.form),
            timestamp(updated, plan.form),
            i64::from(rng.percent(8)),
            i64::from(rng.percent(5)),
            message_count,
        ])?;
        self.count(Table::Conversations);
        Ok(updated)
    }

    /// The user's question number `exchange`, and the app's answer with its
    /// deliberation.
    fn exchange(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        plan: &Plan,
        exchange: usize,
    ) -> rusqlite::Result<()> {
        let question = if exchange == 0 {
            text::first_question(out.rng, plan.topic)
        } else {
            text::follow_up(out.rng, plan.topic)
        };
        out.st.message.execute(params![
            take(&mut self.ids.message),
            plan.id,
            "user",
            question,
            out.clock.next()
        ])?;
        self.count(Table::Messages);
        let message_id = take(&mut self.ids.message);
        out.st.message.execute(params![
            message_id,
            plan.id,
            "assistant",
            Option::<&str>::None,
            out.clock.next()
        ])?;
        self.count(Table::Messages);
        let d = Deliberation {
            message_id,
            topic: plan.topic,
            council: &plan.council,
            chairman: plan.chairman,
            voting: plan.voting,
            modern: plan.modern,
        };
        self.deliberation(out, &d)
    }

    fn deliberation(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        d: &Deliberation<'_>,
    ) -> rusqlite::Result<()> {
        let confidence = self.stage1(out, d)?;
        let rankings = self.stage2(out, d)?;
        self.stage3(out, d)?;
        self.metadata(out, d, &confidence, &rankings)
    }

    /// Each member's answer; returns the confidence each gave, in percent.
    fn stage1(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        d: &Deliberation<'_>,
    ) -> rusqlite::Result<Vec<Option<i64>>> {
        let mut confidence = Vec::with_capacity(d.council.len());
        for member in d.council {
            out.body.clear();
            // Mostly short answers, a long tail of long ones (these spill into
            // SQLite overflow pages, as real long answers do).
            let target = if out.rng.percent(80) {
                out.rng.range(400, 1400)
            } else {
                out.rng.range(2000, 6000)
            } as usize;
            text::answer(&mut out.body, out.rng, d.topic, target);
            let c: Option<i64> = if d.modern && !out.rng.percent(15) {
                Some(match out.rng.below(100) {
                    0 => 0,
                    1 => 100,
                    _ => out.rng.range(35, 99) as i64,
                })
            } else {
                None
            };
            confidence.push(c);
            out.st.stage1.execute(params![
                take(&mut self.ids.stage1),
                d.message_id,
                member.model,
                out.body.as_str(),
                c.map(|h| h as f64 / 100.0),
                member.base_model,
                member.sample_id,
                out.clock.next()
            ])?;
            self.count(Table::Stage1);
        }
        Ok(confidence)
    }

    /// Each member's ranking of the answers.
    fn stage2(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        d: &Deliberation<'_>,
    ) -> rusqlite::Result<Rankings> {
        let k = d.council.len();
        // Evaluators share a rough notion of quality and disagree a little.
        let mut quality: Vec<usize> = (0..k).collect();
        out.rng.shuffle(&mut quality);
        let mut rankings = Rankings {
            debate: d.modern && out.rng.percent(12),
            rubric: d.modern && out.rng.percent(40),
            parsed_orders: Vec::with_capacity(k),
            first_rounds: Vec::new(),
        };
        for member in d.council {
            let mut order = quality.clone();
            perturb(out.rng, &mut order);
            out.body.clear();
            text::raw_ranking(&mut out.body, out.rng, d.topic, &order);
            let parsed = if out.rng.percent(4) {
                None
            } else {
                let labels: Vec<String> = order.iter().map(|&i| text::label(i)).collect();
                let mut j = String::new();
                json::string_array(&mut j, &labels);
                rankings.parsed_orders.push(order.clone());
                Some(j)
            };
            let rubric_scores =
                (rankings.rubric && !out.rng.percent(10)).then(|| rubric_json(out.rng, k));
            if rankings.debate {
                let mut before = order.clone();
                perturb(out.rng, &mut before);
                rankings.first_rounds.push(before);
            }
            out.st.stage2.execute(params![
                take(&mut self.ids.stage2),
                d.message_id,
                member.model,
                out.body.as_str(),
                parsed,
                if rankings.debate { 2i64 } else { 1 },
                rubric_scores,
                out.clock.next()
            ])?;
            self.count(Table::Stage2);
        }
        Ok(rankings)
    }

    /// The chairman's synthesis.
    fn stage3(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        d: &Deliberation<'_>,
    ) -> rusqlite::Result<()> {
        out.body.clear();
        let target = out.rng.range(1500, 3400) as usize;
        text::answer(&mut out.body, out.rng, d.topic, target);
        let meta = (d.modern && out.rng.percent(60)).then(|| {
            let mut m = String::new();
            text::meta_evaluation(&mut m, out.rng, d.topic);
            m
        });
        out.st.stage3.execute(params![
            take(&mut self.ids.stage3),
            d.message_id,
            d.chairman,
            out.body.as_str(),
            meta,
            out.clock.next()
        ])?;
        self.count(Table::Stage3);
        Ok(())
    }

    /// The deliberation's metadata row: who was who, the aggregate ranking
    /// and what the app made of it.
    fn metadata(
        &mut self,
        out: &mut RowWriter<'_, '_>,
        d: &Deliberation<'_>,
        confidence: &[Option<i64>],
        rankings: &Rankings,
    ) -> rusqlite::Result<()> {
        let (aggregate, top) = aggregate_json(d, &rankings.parsed_orders, confidence);
        let aggregate = (d.modern || !out.rng.percent(25)).then_some(aggregate);
        let consensus = (d.modern && out.rng.percent(70))
            .then(|| consensus_json(out.rng, &rankings.parsed_orders, top));
        let features = features_json(out.rng, d, confidence, rankings);
        let stage1_consensus = (d.modern && out.rng.percent(50))
            .then(|| stage1_consensus_json(out.rng, d.council.len()));
        let debate_history = rankings
            .debate
            .then(|| debate_history_json(out.rng, d, &rankings.first_rounds));
        out.st.metadata.execute(params![
            take(&mut self.ids.metadata),
            d.message_id,
            label_to_model_json(d),
            aggregate,
            consensus,
            features,
            stage1_consensus,
            debate_history,
            d.voting,
            out.clock.next()
        ])?;
        self.count(Table::Metadata);
        Ok(())
    }

    fn audit(
        &mut self,
        st: &mut Statements<'_>,
        idx: u64,
        conversation_id: &str,
        start: i64,
        user_times: &[i64],
        end: i64,
    ) -> rusqlite::Result<()> {
        let Some(insert) = st.audit.as_mut() else {
            return Ok(());
        };
        let available = self.keys.partition_point(|key| key.created < start);
        if available == 0 {
            return Ok(());
        }
        let mut rng = Rng::derive(self.seed, STREAM_AUDIT, idx);
        let key_id = self.keys[rng.below(available as u64) as usize].id;
        let ip = match rng.weighted(&[45, 25, 20, 10]) {
            0 => format!("203.0.113.{}", rng.range(1, 254)),
            1 => format!("198.51.100.{}", rng.range(1, 254)),
            2 => format!(
                "2001:db8::{:x}:{:x}",
                rng.below(0x10000),
                rng.below(0x10000)
            ),
            _ => format!("192.0.2.{}", rng.range(1, 254)),
        };
        let user_agent = (!rng.percent(3)).then(|| rng.pick(USER_AGENTS));
        let stream = rng.percent(40);

        let mut requests = Vec::with_capacity(user_times.len() + 3);
        requests.push((start, String::from("/api/conversations")));
        for &t in user_times {
            let suffix = if stream { "message/stream" } else { "message" };
            requests.push((t, format!("/api/conversations/{conversation_id}/{suffix}")));
        }
        let mut t = end;
        for _ in 0..rng.below(3) {
            t += rng.range(SECOND as u64, 2 * HOUR as u64) as i64;
            requests.push((t, format!("/api/conversations/{conversation_id}")));
        }
        for (at, endpoint) in requests {
            let action = AUDIT_ACTIONS[rng.weighted(&[90, 5, 3, 1, 1])];
            insert.execute(params![
                take(&mut self.ids.audit),
                key_id,
                action,
                endpoint,
                ip,
                user_agent,
                uuid_v4(&mut rng, false),
                timestamp(at, TsForm::SqliteDefault)
            ])?;
            self.count(Table::Audit);
        }
        Ok(())
    }
}

/// What a conversation's deliberations are written with: the statements,
/// the conversation's content stream and clock, and one buffer for every
/// long text.
struct RowWriter<'a, 'c> {
    st: &'a mut Statements<'c>,
    rng: &'a mut Rng,
    clock: &'a mut Clock,
    body: String,
}

/// What one conversation is, drawn before any of its rows.
struct Plan {
    start: i64,
    form: TsForm,
    modern: bool,
    id: String,
    topic: &'static Topic,
    exchanges: usize,
    council: Vec<Member>,
    chairman: &'static str,
    voting: Option<&'static str>,
}

/// The times of a conversation's rows, in row order.
struct Timeline {
    /// the conversation's start, then one per row of each exchange
    times: Vec<i64>,
    /// when the user asked each question
    user_times: Vec<i64>,
    /// the last row's time
    last: i64,
}

fn timeline(trng: &mut Rng, start: i64, exchanges: usize, k: usize) -> Timeline {
    let mut times = Vec::with_capacity(1 + exchanges * (2 * k + 4));
    let mut user_times = Vec::with_capacity(exchanges);
    let mut t = start;
    times.push(t);
    for e in 0..exchanges {
        let gap = if e == 0 {
            trng.range(1, 20) as i64 * SECOND
        } else {
            match trng.weighted(&[80, 15, 5]) {
                0 => trng.range(30, 20 * 60) as i64 * SECOND,
                1 => trng.range(1, 24 * 60) as i64 * MINUTE,
                _ => trng.range(1, 30) as i64 * DAY,
            }
        } + trng.below(SECOND as u64) as i64;
        tick(&mut t, trng, gap);
        times.push(t);
        user_times.push(t);
        // The deliberation runs, then the app stores all of its rows.
        let thinking = trng.range(8 * SECOND as u64, 120 * SECOND as u64) as i64;
        tick(&mut t, trng, thinking);
        times.push(t);
        for _ in 0..2 * k + 2 {
            let d = trng.range(150, 4000) as i64;
            tick(&mut t, trng, d);
            times.push(t);
        }
    }
    Timeline {
        times,
        user_times,
        last: t,
    }
}

/// What stage 2 leaves for the metadata.
struct Rankings {
    /// a second round after a debate
    debate: bool,
    rubric: bool,
    /// the rankings that parsed, best first
    parsed_orders: Vec<Vec<usize>>,
    /// each evaluator's ranking before the debate
    first_rounds: Vec<Vec<usize>>,
}

/// `prefix` and then `len` characters of `alphabet`.
fn random_token(rng: &mut Rng, prefix: &str, alphabet: &[u8], len: usize) -> String {
    let mut token = String::from(prefix);
    for _ in 0..len {
        token.push(char::from(rng.pick(alphabet)));
    }
    token
}

fn key_permissions_json(rng: &mut Rng) -> String {
    let permissions: &[&str] = match rng.weighted(&[60, 15, 10, 10, 5]) {
        0 => &["read", "write", "stream"],
        1 => &["read"],
        2 => &["read", "stream"],
        3 => &["read", "write"],
        _ => &["admin", "read", "write", "stream"],
    };
    let mut out = String::new();
    json::string_array(&mut out, permissions);
    out
}

fn key_metadata_json(rng: &mut Rng) -> String {
    let mut m = String::from("{");
    json::key(&mut m, true, "owner");
    json::string(
        &mut m,
        rng.pick(&[
            "zoë@example.com",
            "ops@example.com",
            "田中@example.jp",
            "ci-bot",
        ]),
    );
    json::key(&mut m, false, "team");
    json::string(&mut m, rng.pick(&["platform", "data", "growth", "R&D"]));
    if rng.percent(50) {
        json::key(&mut m, false, "created_via");
        json::string(&mut m, rng.pick(&["cli", "admin-ui", "api"]));
    }
    m.push('}');
    m
}

fn label_to_model_json(d: &Deliberation<'_>) -> String {
    let mut out = String::from("{");
    for (i, member) in d.council.iter().enumerate() {
        json::key(&mut out, i == 0, &text::label(i));
        json::string(&mut out, member.model);
    }
    out.push('}');
    out
}

/// How far the evaluators agree on the winner `top`.
fn consensus_json(rng: &mut Rng, parsed_orders: &[Vec<usize>], top: Option<usize>) -> String {
    let agree = parsed_orders
        .iter()
        .filter(|o| o.first() == top.as_ref())
        .count() as i64;
    let total = parsed_orders.len().max(1) as i64;
    let agreement = (agree * 200 + total) / (2 * total);
    let mut c = String::from("{");
    json::key(&mut c, true, "agreement");
    json::decimal(&mut c, agreement, 2);
    json::key(&mut c, false, "kendall_w");
    json::decimal(&mut c, rng.range(20, 99) as i64, 2);
    json::key(&mut c, false, "top_choice");
    match top {
        Some(i) => json::string(&mut c, &text::label(i)),
        None => c.push_str("null"),
    }
    json::key(&mut c, false, "unanimous");
    json::bool(&mut c, agreement == 100);
    c.push('}');
    c
}

/// The features the deliberation used; older app versions recorded fewer,
/// or none.
fn features_json(
    rng: &mut Rng,
    d: &Deliberation<'_>,
    confidence: &[Option<i64>],
    rankings: &Rankings,
) -> Option<String> {
    if !d.modern {
        return rng
            .percent(50)
            .then(|| String::from("{\"debate\": false, \"rubric_scoring\": false}"));
    }
    let mut f = String::from("{");
    json::key(&mut f, true, "confidence_scoring");
    json::bool(&mut f, confidence.iter().any(Option::is_some));
    json::key(&mut f, false, "debate");
    json::bool(&mut f, rankings.debate);
    json::key(&mut f, false, "rubric_scoring");
    json::bool(&mut f, rankings.rubric);
    json::key(&mut f, false, "self_consistency");
    json::bool(&mut f, d.council.iter().any(|m| m.sample_id.is_some()));
    json::key(&mut f, false, "voting_method");
    match d.voting {
        Some(v) => json::string(&mut f, v),
        None => f.push_str("null"),
    }
    f.push('}');
    Some(f)
}

/// How alike the `k` stage-1 answers were.
fn stage1_consensus_json(rng: &mut Rng, k: usize) -> String {
    let mut s = String::from("{");
    json::key(&mut s, true, "mean_similarity");
    json::decimal(&mut s, rng.range(40, 95) as i64, 2);
    json::key(&mut s, false, "clusters");
    json::int(&mut s, rng.range(1, 3) as i64);
    json::key(&mut s, false, "outlier");
    if rng.percent(50) {
        s.push_str("null");
    } else {
        json::string(&mut s, &text::label(rng.below(k as u64) as usize));
    }
    s.push('}');
    s
}

/// The rankings before the debate, and how the second round moved them.
fn debate_history_json(rng: &mut Rng, d: &Deliberation<'_>, first_rounds: &[Vec<usize>]) -> String {
    let k = d.council.len();
    let mut h = String::from("[{\"round\": 1, \"rankings\": [");
    for (i, (member, order)) in d.council.iter().zip(first_rounds).enumerate() {
        json::separator(&mut h, i == 0);
        h.push('{');
        json::key(&mut h, true, "evaluator");
        json::string(&mut h, member.model);
        json::key(&mut h, false, "ranking");
        let labels: Vec<String> = order.iter().map(|&i| text::label(i)).collect();
        json::string_array(&mut h, &labels);
        h.push('}');
    }
    h.push_str("]}, {\"round\": 2, \"changed_positions\": ");
    json::int(&mut h, rng.range(0, k as u64) as i64);
    h.push_str(", \"converged\": ");
    json::bool(&mut h, rng.percent(60));
    h.push_str("}]");
    h
}

struct Deliberation<'a> {
    message_id: i64,
    topic: &'static Topic,
    council: &'a [Member],
    chairman: &'static str,
    voting: Option<&'static str>,
    modern: bool,
}

/// Hands out a conversation's precomputed times in row order.
struct Clock {
    times: Vec<i64>,
    next: usize,
    form: TsForm,
}

impl Clock {
    fn next(&mut self) -> String {
        let t = self
            .times
            .get(self.next)
            .or(self.times.last())
            .copied()
            .unwrap_or(START);
        self.next += 1;
        timestamp(t, self.form)
    }
}

/// Advances the clock, now and then landing on a whole second: Python's
/// isoformat() then omits the fraction, a form the importer must accept.
fn tick(t: &mut i64, rng: &mut Rng, delta: i64) {
    *t += delta.max(1);
    if rng.permille(2) {
        *t = (*t / SECOND + 1) * SECOND;
    }
}

fn council(rng: &mut Rng, start: i64) -> Vec<Member> {
    let pool = if start < NEW_MODELS_FROM {
        OLD_MODELS
    } else {
        NEW_MODELS
    };
    let modern = start >= AWARE_FROM;
    let k = 3 + rng.weighted(&[25, 50, 25]);
    let mut models = pool.to_vec();
    rng.shuffle(&mut models);
    models.truncate(k);
    if modern && rng.percent(8) {
        // Self-consistency: one base model sampled three times fills three
        // of the seats.
        let base = models[0];
        let samples = (0..3).map(|s| Member {
            model: base,
            base_model: Some(base),
            sample_id: Some(s),
        });
        let others = models[1..k - 2].iter().map(|&m| Member {
            model: m,
            base_model: Some(m),
            sample_id: None,
        });
        samples.chain(others).collect()
    } else {
        let null_base = if modern { 10 } else { 60 };
        models
            .into_iter()
            .map(|m| Member {
                model: m,
                base_model: (!rng.percent(null_base)).then_some(m),
                sample_id: None,
            })
            .collect()
    }
}

/// Swaps a few neighbours: an evaluator mostly agreeing with the others.
fn perturb(rng: &mut Rng, order: &mut [usize]) {
    if order.len() < 2 {
        return;
    }
    for _ in 0..rng.below(3) {
        let i = rng.below(order.len() as u64 - 1) as usize;
        order.swap(i, i + 1);
    }
}

fn rubric_json(rng: &mut Rng, k: usize) -> String {
    let mut r = String::from("{");
    for i in 0..k {
        json::key(&mut r, i == 0, &text::label(i));
        r.push('{');
        for (j, criterion) in ["accuracy", "completeness", "clarity", "relevance"]
            .iter()
            .enumerate()
        {
            json::key(&mut r, j == 0, criterion);
            // half points from 5.0 to 10.0; whole ones print as ints,
            // as when the evaluator's own JSON had `8` rather than `8.0`
            let halves = rng.range(10, 20) as i64;
            if halves % 2 == 0 && rng.percent(50) {
                json::int(&mut r, halves / 2);
            } else {
                json::decimal(&mut r, halves * 5, 1);
            }
        }
        r.push('}');
    }
    r.push('}');
    r
}

/// The aggregate ranking over the evaluators whose ranking parsed, best
/// first, and the winning label.
fn aggregate_json(
    d: &Deliberation<'_>,
    orders: &[Vec<usize>],
    confidence: &[Option<i64>],
) -> (String, Option<usize>) {
    let k = d.council.len();
    let mut sums = vec![0i64; k];
    let mut counts = vec![0i64; k];
    let mut borda = vec![0i64; k];
    let mut reciprocal = vec![0i64; k];
    for order in orders {
        for (pos, &label) in order.iter().enumerate() {
            let pos = pos as i64;
            sums[label] += pos + 1;
            counts[label] += 1;
            borda[label] += k as i64 - 1 - pos;
            reciprocal[label] += 10_000 / (pos + 1);
        }
    }
    let average = |i: usize| (sums[i] * 200 + counts[i]) / (2 * counts[i]).max(1);
    let mut ranked: Vec<usize> = (0..k).filter(|&i| counts[i] > 0).collect();
    ranked.sort_by_key(|&i| (average(i), i));
    let mut out = String::from("[");
    for (n, &i) in ranked.iter().enumerate() {
        json::separator(&mut out, n == 0);
        out.push('{');
        json::key(&mut out, true, "model");
        json::string(&mut out, d.council[i].model);
        json::key(&mut out, false, "average_rank");
        json::decimal(&mut out, average(i), 2);
        json::key(&mut out, false, "rankings_count");
        json::int(&mut out, counts[i]);
        match d.voting {
            Some("borda") => {
                json::key(&mut out, false, "borda_score");
                json::int(&mut out, borda[i]);
            }
            Some("mrr") => {
                json::key(&mut out, false, "mrr");
                json::decimal(&mut out, reciprocal[i] / counts[i].max(1), 4);
            }
            Some(_) => {
                json::key(&mut out, false, "weighted_score");
                let weight = confidence.get(i).copied().flatten().unwrap_or(50);
                json::decimal(&mut out, borda[i] * weight, 2);
            }
            None => {}
        }
        out.push('}');
    }
    out.push(']');
    (out, ranked.first().copied())
}
