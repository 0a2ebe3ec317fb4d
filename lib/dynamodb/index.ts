export { DynamoDBSessionInterface, type DynamoDBSessionOptions } from './dynamodb.session-interface.js';
