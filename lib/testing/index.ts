export {
  sessionTransaction,
  type AgentCookieJar,
  type SessionTestAgent,
  type SessionTestApp,
  type SessionTransactionOptions,
} from './session-transaction.js';
