import { describe, expect, it } from 'vitest';
import { isLoopback } from '../src/http/auth';

describe('isLoopback', () => {
  it('is 127.0.0.0/8, ::1 and 127.0.0.0/8 mapped into IPv6, in the forms uWS reports them', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '127.255.255.254', '::1', '0000:0000:0000:0000:0000:0000:0000:0001', '::ffff:127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001', '0000:0000:0000:0000:0000:ffff:7fab:cdef']) {
      expect(isLoopback(a), a).toBe(true);
    }
  });

  it('is nothing else', () => {
    for (const a of ['', '128.0.0.1', '10.0.0.1', '192.0.2.1', '0.0.0.0', '1.127.0.0.1', '127.0.0.1.example', ' 127.0.0.1', '::2', '::', 'fe80::1', '::ffff:10.0.0.1', '0000:0000:0000:0000:0000:ffff:0a00:0001', '0000:0000:0000:0000:0000:0000:0000:0002', 'localhost']) {
      expect(isLoopback(a), a).toBe(false);
    }
  });
});
