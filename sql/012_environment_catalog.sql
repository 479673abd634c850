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
-- The copy locks the template and cluster rows (FOR NO KEY UPDATE, what
-- a change of them takes), so a change either commits before the copy
-- (which waits for it and reads the new values) or waits for the
-- environment's commit (and then rewrites it): never between.  Not FOR
-- SHARE: two creations from one template would each hold it and then
-- deadlock on the usage_count update; this way the first lock a
-- creation takes on the template is the strongest it needs.  (Creations
-- already ran one at a time, on the clusters lock.)
--
-- The columns stay nullable: an unknown template or cluster is the
-- foreign key's error (23503), as before, not a null's.

ALTER TABLE environments
    ADD COLUMN template_name text,
    ADD COLUMN template_display_name text,
    ADD COLUMN template_variables jsonb,
    ADD COLUMN region text;

UPDATE environments e SET template_name = t.name,
    template_display_name = t.display_name,
    template_variables = t.environment_variables
    FROM templates t WHERE t.id = e.template_id;
UPDATE environments e SET region = c.region
    FROM clusters c WHERE c.id = e.cluster_id;

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
		SELECT c.region INTO NEW.region
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
	    WHERE template_id = NEW.id;
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
	UPDATE environments SET region = NEW.region
	    WHERE cluster_id = NEW.id;
	RETURN NULL;
END;
$$;

CREATE TRIGGER clusters_to_envs AFTER UPDATE OF region ON clusters
    FOR EACH ROW WHEN (OLD.region IS DISTINCT FROM NEW.region)
    EXECUTE FUNCTION devpocket_cluster_to_envs();
