-- sql/012_environment_catalog.sql: what an Environment shows of its
-- template and cluster, kept on its own row
--
-- An Environment carries its template's name, display name and
-- variables and its cluster's region (CONTRACT §1.3).  Every read joined
-- templates and clusters for them; in the list those two joins' executor
-- start cost as much as the rest of the statement.  The values are now
-- columns of environments, copied when a row is written with a template
-- or cluster (whoever writes it) and again, into every environment of
-- it, when a template or cluster changes them: what the joins read.
--
-- The copy locks the template and cluster rows FOR NO KEY UPDATE, which
-- conflicts with any change of them: a change either commits before the
-- copy (which waits for it and reads the new values) or waits for the
-- environment's commit (and then rewrites it), never between.  (FOR
-- SHARE would do that too; this lock is what the creation's usage_count
-- update takes anyway.)  A rewrite locks its environments in id order,
-- as dp_envs_terminate_user does, so the two cannot deadlock.
--
-- The columns stay nullable: an unknown template or cluster is the
-- foreign key's error (23503), as before, not a null's.

-- No change of a template or cluster may come between the copy below
-- and the triggers.
LOCK TABLE templates, clusters IN SHARE MODE;

ALTER TABLE environments
    ADD COLUMN template_name text,
    ADD COLUMN template_display_name text,
    ADD COLUMN template_variables jsonb,
    ADD COLUMN cluster_region text;

UPDATE environments e SET template_name = t.name,
    template_display_name = t.display_name,
    template_variables = t.environment_variables, cluster_region = c.region
    FROM templates t, clusters c
    WHERE t.id = e.template_id AND c.id = e.cluster_id;

-- The rewrites find a template's environments by this (a cluster's by
-- environments_cluster and, for the terminated ones, a scan: a region
-- changes seldom).
CREATE INDEX environments_template ON environments (template_id);

CREATE FUNCTION devpocket_env_catalog() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' OR NEW.template_id IS DISTINCT FROM
	    OLD.template_id THEN
		SELECT t.name, t.display_name, t.environment_variables
		    INTO NEW.template_name, NEW.template_display_name,
		    NEW.template_variables
		    FROM templates t WHERE t.id = NEW.template_id
		    FOR NO KEY UPDATE;
	END IF;
	IF TG_OP = 'INSERT' OR NEW.cluster_id IS DISTINCT FROM
	    OLD.cluster_id THEN
		SELECT c.region INTO NEW.cluster_region
		    FROM clusters c WHERE c.id = NEW.cluster_id
		    FOR NO KEY UPDATE;
	END IF;
	RETURN NEW;
END;
$$;

CREATE TRIGGER environments_catalog BEFORE INSERT OR UPDATE OF template_id,
    cluster_id ON environments FOR EACH ROW
    EXECUTE FUNCTION devpocket_env_catalog();

CREATE FUNCTION devpocket_template_to_envs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE environments SET template_name = NEW.name,
	    template_display_name = NEW.display_name,
	    template_variables = NEW.environment_variables
	    WHERE id IN (SELECT id FROM environments
	    WHERE template_id = NEW.id ORDER BY id FOR NO KEY UPDATE);
	RETURN NULL;
END;
$$;

CREATE TRIGGER templates_to_envs AFTER UPDATE OF name, display_name,
    environment_variables ON templates FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR
    OLD.display_name IS DISTINCT FROM NEW.display_name OR
    OLD.environment_variables IS DISTINCT FROM NEW.environment_variables)
    EXECUTE FUNCTION devpocket_template_to_envs();

CREATE FUNCTION devpocket_cluster_to_envs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE environments SET cluster_region = NEW.region
	    WHERE id IN (SELECT id FROM environments
	    WHERE cluster_id = NEW.id ORDER BY id FOR NO KEY UPDATE);
	RETURN NULL;
END;
$$;

CREATE TRIGGER clusters_to_envs AFTER UPDATE OF region ON clusters
    FOR EACH ROW WHEN (OLD.region IS DISTINCT FROM NEW.region)
    EXECUTE FUNCTION devpocket_cluster_to_envs();
