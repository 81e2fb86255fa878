// test/champion-http.test.ts again, with HTTP_THREADS=2: the threads route a request naming no model to the champion the main thread publishes.
import '../helpers/http-threads-2';
import '../champion-http.test';
