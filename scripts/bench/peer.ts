/**
 * The bench's peer: a bare fastify server with pino request logging (to stdout, as metald logs) and one trivial
 * JSON route, `GET /ping`. Prints `{"port": N}` once listening on 127.0.0.1.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: { level: 'info' } });
app.get('/ping', async () => ({ status: 'ok' }));
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
