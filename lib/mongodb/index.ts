export { MongoDBSessionInterface, type MongoDBSessionOptions } from './mongodb.session-interface.js';
