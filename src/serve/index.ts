/** The HTTP server, its engine contract and the pieces it is built from. */
export * from './engine.js';
export { startServer, isLoopback, type ServeOptions, type RunningServer } from './server.js';
export { WorkQueue, QueueFullError, QueueClosedError, type Ticket } from './queue.js';
export { HttpError } from './http.js';
export { receiveMultipart, inspectUpload, type UploadLimits, type UploadedFile } from './upload.js';
