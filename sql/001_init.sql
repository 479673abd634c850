-- sql/001_init.sql: users, login sessions, tokens, rate windows, jobs
CREATE TABLE users (
	id			text PRIMARY KEY,
	username		text NOT NULL,
	email			text NOT NULL,
	password_hash		text,
	full_name		text,
	preferred_region	text NOT NULL DEFAULT 'us-east',
	avatar_url		text,
	is_active		boolean NOT NULL DEFAULT true,
	is_verified		boolean NOT NULL DEFAULT false,
	subscription_plan	text NOT NULL DEFAULT 'free'
	    CHECK (subscription_plan IN ('free', 'starter', 'pro', 'admin')),
	google_sub		text UNIQUE,
	failed_logins		integer NOT NULL DEFAULT 0,
	locked_until		timestamptz,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	last_login		timestamptz,
	deleted_at		timestamptz
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- A login session owns one refresh-token family; revoking it invalidates
-- its access tokens (their sid claim) at once.
CREATE TABLE login_sessions (
	id			text PRIMARY KEY,
	user_id			text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at		timestamptz NOT NULL DEFAULT now(),
	authenticated_at	timestamptz NOT NULL DEFAULT now(),
	revoked_at		timestamptz
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

-- Refresh tokens are stored as SHA-256 hex of the opaque token.
CREATE TABLE refresh_tokens (
	token_hash	text PRIMARY KEY,
	session_id	text NOT NULL REFERENCES login_sessions (id) ON DELETE CASCADE,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	consumed_at	timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Email verification and password reset tokens, hashed, single use.
CREATE TABLE email_tokens (
	token_hash	text PRIMARY KEY,
	user_id		text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind		text NOT NULL CHECK (kind IN ('verify', 'reset')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, kind);
CREATE INDEX email_tokens_expires ON email_tokens (expires_at);

-- Fixed rate-limit windows shared by every process and host.  Losing them
-- in a crash only resets counters, so the table is not WAL-logged.
CREATE UNLOGGED TABLE rate_windows (
	key		text NOT NULL,
	window_start	bigint NOT NULL,
	window_len	integer NOT NULL,
	count		integer NOT NULL,
	PRIMARY KEY (key, window_start)
);

-- Work done outside requests: mail, environment lifecycle, …
CREATE TABLE jobs (
	id		bigserial PRIMARY KEY,
	kind		text NOT NULL,
	payload		jsonb NOT NULL DEFAULT '{}',
	state		text NOT NULL DEFAULT 'queued'
	    CHECK (state IN ('queued', 'running', 'done', 'failed')),
	attempts	integer NOT NULL DEFAULT 0,
	max_attempts	integer NOT NULL DEFAULT 8,
	run_at		timestamptz NOT NULL DEFAULT now(),
	locked_at	timestamptz,
	locked_by	text,
	last_error	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_ready ON jobs (run_at) WHERE state = 'queued';
