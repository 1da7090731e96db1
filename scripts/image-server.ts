/**
 * An image server for the emulated racks of the demo and the bench: serves one image at one path, each transfer
 * paced at `rateMiBs` by the clock (a server's link, not the loopback's), so that an install takes as long as its
 * transfer would.
 */
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';

export function throttledImageServer(image: Buffer, rateMiBs: number, path = '/image.img'): Promise<Server> {
  const chunk = 64 * 1024;
  const gapMs = (chunk / (rateMiBs * 1024 * 1024)) * 1000;
  const srv = createServer((req, res) => {
    if (req.url !== path) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': image.length });
    if (req.method === 'HEAD') return res.end();
    const t0 = performance.now();
    let off = 0;
    // Paced by the clock, not by a fixed gap per chunk: timer lateness does not slow the link.
    const pump = () => {
      if (res.destroyed) return;
      const due = Math.min(image.length, Math.floor(((performance.now() - t0) / gapMs + 1) * chunk));
      if (due > off) {
        res.write(image.subarray(off, due));
        off = due;
      }
      if (off >= image.length) return res.end();
      setTimeout(pump, Math.max(1, gapMs));
    };
    pump();
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv)));
}
