/**
 * Imported first by the suites of test/http-threads-2/: every engine they start, in this process
 * (startTestEngine) or as a child process (which inherits the environment), runs with two HTTP
 * front-end threads instead of the main thread serving HTTP itself.
 */
process.env.TRADEFLOW_TEST_HTTP_THREADS = '2';
process.env.HTTP_THREADS = '2';
