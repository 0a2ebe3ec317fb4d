export { FileSystemSessionInterface, type FileSystemSessionOptions } from './filesystem.session-interface.js';
