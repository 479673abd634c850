-- sql/002_environments.sql: templates, clusters, environments, their logs and metrics
CREATE TABLE templates (
	id			text PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	display_name		text NOT NULL,
	description		text NOT NULL,
	category		text NOT NULL CHECK (category IN ('programming_language',
	    'framework', 'database', 'devops', 'operating_system')),
	tags			jsonb NOT NULL DEFAULT '[]',
	docker_image		text NOT NULL,
	default_port		integer NOT NULL DEFAULT 8080,
	default_resources	jsonb NOT NULL,		-- {"cpu","memory","storage"}
	environment_variables	jsonb NOT NULL DEFAULT '{}',
	startup_commands	jsonb NOT NULL DEFAULT '[]',
	local_startup_commands	jsonb,			-- null = startup_commands
	documentation_url	text,
	icon_url		text,
	status			text NOT NULL DEFAULT 'active'
	    CHECK (status IN ('active', 'beta', 'deprecated')),
	version			text NOT NULL DEFAULT '1.0.0',
	usage_count		integer NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clusters (
	id			text PRIMARY KEY,
	name			text NOT NULL,
	description		text,
	region			text NOT NULL CHECK (region IN ('us-east', 'us-west',
	    'eu-central', 'asia-pacific', 'southeast-asia')),
	provider		text NOT NULL CHECK (provider IN ('kubernetes', 'local')),
	endpoint		text,
	is_default		boolean NOT NULL DEFAULT false,
	max_environments	integer NOT NULL DEFAULT 100,
	status			text NOT NULL DEFAULT 'active'
	    CHECK (status IN ('active', 'inactive', 'maintenance')),
	health_status		text NOT NULL DEFAULT 'unknown'
	    CHECK (health_status IN ('healthy', 'unhealthy', 'unknown')),
	last_health_check	timestamptz,
	node_count		integer,
	-- Allocatable capacity from the last successful probe:
	-- {"cpu": cores, "memory": GiB, "storage": GiB} numbers.
	capacity		jsonb,
	-- The kubeconfig sealed with AES-256-GCM (crypto.h dp_seal).
	kube_config_sealed	text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX clusters_name_lower ON clusters (lower(name));
CREATE UNIQUE INDEX clusters_one_default ON clusters (is_default) WHERE is_default;

CREATE TABLE environments (
	id			text PRIMARY KEY,
	user_id			text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name			text NOT NULL,
	description		text,
	template_id		text NOT NULL REFERENCES templates (id),
	docker_image		text NOT NULL,
	port			integer NOT NULL,
	resources		jsonb NOT NULL,		-- {"cpu","memory","storage"} strings
	environment_variables	jsonb NOT NULL DEFAULT '{}',	-- the user's own
	status			text NOT NULL DEFAULT 'creating'
	    CHECK (status IN ('creating', 'installing', 'running', 'stopped',
	    'terminated', 'error')),
	installation_completed	boolean NOT NULL DEFAULT false,
	cluster_id		text NOT NULL REFERENCES clusters (id),
	external_url		text,
	-- Incremented by every start/restart/stop/delete so that a job of an
	-- older generation knows it was overtaken.
	generation		integer NOT NULL DEFAULT 1,
	-- Bytes of the driver's install log already copied into environment_logs.
	install_log_offset	bigint NOT NULL DEFAULT 0,
	install_started_at	timestamptz,
	running_since		timestamptz,
	terminated_at		timestamptz,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	last_accessed		timestamptz,
	last_activity		timestamptz
);
CREATE UNIQUE INDEX environments_user_name ON environments (user_id, name)
    WHERE status <> 'terminated';
CREATE INDEX environments_user ON environments (user_id, created_at DESC, id);
CREATE INDEX environments_cluster ON environments (cluster_id)
    WHERE status <> 'terminated';

CREATE TABLE environment_logs (
	id		bigserial PRIMARY KEY,
	environment_id	text NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	ts		timestamptz NOT NULL DEFAULT clock_timestamp(),
	level		text NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
	message		text NOT NULL,
	source		text NOT NULL CHECK (source IN ('install', 'container', 'system'))
);
CREATE INDEX environment_logs_env ON environment_logs (environment_id, ts, id);

CREATE TABLE metric_samples (
	environment_id	text NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	ts		timestamptz NOT NULL DEFAULT now(),
	cpu_usage	double precision NOT NULL,
	memory_usage	double precision NOT NULL,
	storage_usage	bigint NOT NULL,
	network_rx	bigint NOT NULL,
	network_tx	bigint NOT NULL
);
CREATE INDEX metric_samples_env ON metric_samples (environment_id, ts);
