#!/bin/bash
# Databases and least-privilege users for the churn deployment. Passwords come from the environment,
# so none is ever in the repository.
#
# - On the first start of an empty data volume, the MySQL image's entrypoint sources this file from
#   /docker-entrypoint-initdb.d and we run the SQL through its docker_process_sql (root over the
#   init socket).
# - Run by hand it does the same through the `mysql` client: MYSQL_CLIENT_ARGS says how to reach the
#   server as an administrator (password in MYSQL_PWD). Running it again is safe and sets the
#   passwords anew, which is how they are rotated (README, "Running in production"):
#     MYSQL_CLIENT_ARGS="-h 127.0.0.1 -u root" MYSQL_PWD=... CHURN_WRITER_PASSWORD=... ... bash 10-users.sh
#
# Users: churn_writer (the pipeline: reads and rewrites its tables, creates and alters them),
# churn_reader (analysts, BI and the dashboard: SELECT only), dagster (owns Dagster's storage database).

churn_init_identifier() {  # database and user names are spliced into SQL: allow only plain names
    if [[ ! "$1" =~ ^[A-Za-z0-9_]{1,32}$ ]]; then
        echo "10-users.sh: '$1' is not a valid MySQL name (letters, digits, _; at most 32)" >&2
        return 1
    fi
    printf '%s' "$1"
}

churn_init_literal() {  # a password as a quoted SQL string: backslashes and quotes escaped
    local value=${1//\\/\\\\}
    printf "'%s'" "${value//\'/\'\'}"
}

churn_init_sql() {
    local churn_db dagster_db writer reader dagster host name
    for name in CHURN_WRITER_PASSWORD CHURN_READER_PASSWORD DAGSTER_MYSQL_PASSWORD; do
        if [[ -z "${!name:-}" ]]; then
            echo "10-users.sh: $name is not set (see docker/.env.example)" >&2
            return 1
        fi
    done
    churn_db=$(churn_init_identifier "${CHURN_DB_NAME:-churn}") || return 1
    dagster_db=$(churn_init_identifier "${DAGSTER_MYSQL_DB:-dagster}") || return 1
    writer=$(churn_init_identifier "${CHURN_WRITER_USER:-churn_writer}") || return 1
    reader=$(churn_init_identifier "${CHURN_READER_USER:-churn_reader}") || return 1
    dagster=$(churn_init_identifier "${DAGSTER_MYSQL_USER:-dagster}") || return 1
    host=$(churn_init_literal "${CHURN_DB_USER_HOST:-%}")
    cat <<SQL
CREATE DATABASE IF NOT EXISTS \`$churn_db\` CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS \`$dagster_db\` CHARACTER SET utf8mb4;

CREATE USER IF NOT EXISTS '$writer'@$host IDENTIFIED BY $(churn_init_literal "$CHURN_WRITER_PASSWORD");
ALTER USER '$writer'@$host IDENTIFIED BY $(churn_init_literal "$CHURN_WRITER_PASSWORD");
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER, DROP ON \`$churn_db\`.* TO '$writer'@$host;

CREATE USER IF NOT EXISTS '$reader'@$host IDENTIFIED BY $(churn_init_literal "$CHURN_READER_PASSWORD");
ALTER USER '$reader'@$host IDENTIFIED BY $(churn_init_literal "$CHURN_READER_PASSWORD");
GRANT SELECT ON \`$churn_db\`.* TO '$reader'@$host;

CREATE USER IF NOT EXISTS '$dagster'@$host IDENTIFIED BY $(churn_init_literal "$DAGSTER_MYSQL_PASSWORD");
ALTER USER '$dagster'@$host IDENTIFIED BY $(churn_init_literal "$DAGSTER_MYSQL_PASSWORD");
GRANT ALL PRIVILEGES ON \`$dagster_db\`.* TO '$dagster'@$host;
SQL
}

churn_init_run() {
    local sql
    sql=$(churn_init_sql) || return 1
    if declare -F docker_process_sql >/dev/null; then
        docker_process_sql <<<"$sql"
    else
        # shellcheck disable=SC2086 # MYSQL_CLIENT_ARGS is a list of client options
        mysql ${MYSQL_CLIENT_ARGS:---protocol=socket -u root} <<<"$sql"
    fi
    echo "10-users.sh: databases ${CHURN_DB_NAME:-churn}, ${DAGSTER_MYSQL_DB:-dagster} and their users are ready"
}

churn_init_run
