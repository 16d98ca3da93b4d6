-- The history's SQLite schema at the newest revision: written by `python -m status.tables`
-- (never by hand; tests/status/test_rows.py checks it). status.sqlite creates a new
-- history with it, then stamps the revision.

CREATE TABLE alerts (
	id VARCHAR NOT NULL, 
	"key" VARCHAR NOT NULL, 
	job VARCHAR, 
	run_id VARCHAR, 
	host VARCHAR DEFAULT '' NOT NULL, 
	severity VARCHAR NOT NULL, 
	title VARCHAR NOT NULL, 
	detail VARCHAR NOT NULL, 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	count INTEGER NOT NULL, 
	resolved_at DATETIME, 
	resolution VARCHAR, 
	acknowledged_at DATETIME, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_alerts_host ON alerts (host);

CREATE INDEX ix_alerts_key ON alerts ("key");

CREATE TABLE claims (
	"key" VARCHAR NOT NULL, 
	owner VARCHAR NOT NULL, 
	claimed_at DATETIME NOT NULL, 
	lease_until DATETIME NOT NULL, 
	done_at DATETIME, 
	detail VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE events (
	id INTEGER NOT NULL, 
	ts DATETIME NOT NULL, 
	job VARCHAR NOT NULL, 
	run_id VARCHAR, 
	host VARCHAR DEFAULT '' NOT NULL, 
	kind VARCHAR NOT NULL, 
	from_state VARCHAR, 
	to_state VARCHAR, 
	reason VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_events_host ON events (host);

CREATE INDEX ix_events_job ON events (job);

CREATE INDEX ix_events_run_id ON events (run_id);

CREATE INDEX ix_events_ts ON events (ts);

CREATE TABLE host_samples (
	id INTEGER NOT NULL, 
	ts DATETIME NOT NULL, 
	host VARCHAR DEFAULT '' NOT NULL, 
	cpu_pct FLOAT NOT NULL, 
	load1 FLOAT NOT NULL, 
	mem_pct FLOAT NOT NULL, 
	swap_pct FLOAT NOT NULL, 
	disk JSON, 
	temp_c FLOAT, 
	score INTEGER NOT NULL, 
	label VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_host_samples_host ON host_samples (host);

CREATE INDEX ix_host_samples_ts ON host_samples (ts);

CREATE TABLE hosts (
	host VARCHAR NOT NULL, 
	started_at DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	stopped_at DATETIME, 
	pid INTEGER, 
	version VARCHAR NOT NULL, 
	report_every FLOAT NOT NULL, 
	health JSON, 
	jobs JSON, 
	active_alerts INTEGER NOT NULL, 
	instance VARCHAR DEFAULT '' NOT NULL, 
	machine VARCHAR DEFAULT '' NOT NULL, 
	clock_offset FLOAT, 
	PRIMARY KEY (host)
);

CREATE TABLE notify_state (
	id INTEGER NOT NULL, 
	updated_at DATETIME NOT NULL, 
	state JSON, 
	PRIMARY KEY (id)
);

CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	sink VARCHAR NOT NULL, 
	payload JSON, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	delivered_at DATETIME, 
	last_error VARCHAR, 
	duration_ms FLOAT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_outbox_created_at ON outbox (created_at);

CREATE INDEX ix_outbox_delivered_at ON outbox (delivered_at);

CREATE INDEX ix_outbox_next_attempt_at ON outbox (next_attempt_at);

CREATE INDEX ix_outbox_sink ON outbox (sink);

CREATE TABLE runs (
	run_id VARCHAR NOT NULL, 
	job VARCHAR NOT NULL, 
	host VARCHAR DEFAULT '' NOT NULL, 
	state VARCHAR NOT NULL, 
	started_at DATETIME NOT NULL, 
	ended_at DATETIME, 
	pid INTEGER, 
	pid_created FLOAT, 
	command VARCHAR NOT NULL, 
	exit_code INTEGER, 
	signal VARCHAR, 
	error VARCHAR, 
	run_dir VARCHAR NOT NULL, 
	phase VARCHAR NOT NULL, 
	message VARCHAR NOT NULL, 
	progress JSON, 
	proofs JSON, 
	last_heartbeat_at DATETIME, 
	last_progress_at DATETIME, 
	PRIMARY KEY (run_id)
);

CREATE INDEX ix_runs_host_job_started_at ON runs (host, job, started_at);

CREATE INDEX ix_runs_job ON runs (job);

CREATE INDEX ix_runs_started_at ON runs (started_at);

CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));

