export { SqlSessionInterface, type SqlSessionOptions } from './sql.session-interface.js';
export type { SqlClient, SqlDataSource, SqlMysqlPool, SqlPgPool, SqlSqliteDatabase } from './sql-connection.js';
