//! Connections to PostgreSQL: the connection string (a secret: it usually holds the
//! password), and the settings every opsgate connection gets.

use std::fmt;
use std::time::Duration;

use postgres::{Client, NoTls};

/// The connection string. Never printed: `Debug` shows only where the server is.
#[derive(Clone)]
pub struct Url {
    config: postgres::Config,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({})", self.server())
    }
}

impl Url {
    /// Parses a connection string (`postgresql://...` or `host=... user=...`). The error
    /// never repeats the string, which may hold a password.
    pub fn parse(text: &str) -> Result<Url, String> {
        let config = text.parse::<postgres::Config>().map_err(|_| {
            "the PostgreSQL connection string cannot be parsed (expected \
             postgresql://USER:PASSWORD@HOST:PORT/DATABASE or key=value pairs)"
                .to_string()
        })?;
        Ok(Url { config })
    }

    /// `host:port/database`, for logs and messages.
    pub fn server(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("(default database)");
        format!("{host}:{port}/{db}")
    }

    /// A new connection. `deadline` bounds how long the server may leave a request
    /// unanswered at the TCP level, so a vanished server ends a call with an error rather
    /// than hanging it.
    pub fn connect(&self, purpose: &str, deadline: Duration) -> Result<Client, String> {
        let mut config = self.config.clone();
        config
            .application_name(&format!("opsgate {purpose}"))
            .connect_timeout(deadline)
            .tcp_user_timeout(deadline)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        config.connect(NoTls).map_err(|e| {
            format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.server(),
                explain(&e)
            )
        })
    }
}

/// A PostgreSQL error with the server's own message when there is one.
pub fn explain(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A connection and the statements prepared on it, so a query is parsed once per
/// connection rather than once per call (a round trip saved on every read).
pub struct Conn {
    pub client: Client,
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
}

impl Conn {
    pub fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: std::collections::HashMap::new(),
        }
    }

    /// `sql`, prepared on this connection the first time it is asked for.
    pub fn statement(&mut self, sql: &'static str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// The client's queries, on statements prepared once.
impl Conn {
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<postgres::Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn query_raw<'a>(
        &'a mut self,
        sql: &'static str,
        params: [&'a dyn postgres::types::ToSql; 1],
    ) -> Result<postgres::RowIter<'a>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_raw(&statement, params)
    }
}
