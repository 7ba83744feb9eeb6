// HttpEngine over Boost.Beast and Boost.Asio: an event-driven HTTP/1.1 server. The only file
// of pagekeeper that includes Beast or Asio (they cost compile and clang-tidy time).
//
// Threads: `io_threads` run the io_context (accept, read, parse, write: never a handler), and
// `worker_threads` run the handlers from one queue. A connection whose request is queued or
// running holds no thread; an idle or slow connection holds only its socket, its buffer
// and its timer.
//
// A connection's life, on its strand (so its steps never run concurrently; with one I/O
// thread, on that thread, which serializes them without a strand's cost):
//   wait   until the first byte of a request arrives (idle_timeout; stop() closes it here),
//   header until the header is complete (header_timeout; header_limit -> 431),
//   body   until the body is complete (body_timeout; body_limit, whatever the framing, -> 413),
//   handle the request is queued for, or running on, a worker,
//   write  the answer (write_timeout), then back to wait for the next request of a keep-alive
//          connection (pipelined requests already buffered are parsed next, so answers go out
//          in order).
// After a refusal of the framing (400, 413, 414, 415, 431) the connection is closed: the
// rest of its bytes cannot be trusted to start a request.
//
// Deadlines: each step stores its deadline in the session; one sweeper timer compares them
// every eighth of the shortest timeout and ends the overdue steps on their strands.
//
// Locking: `sessions_mutex` guards the set of live sessions and `draining`; the worker queue
// has its own mutex and condition variable; a session's deadline is an atomic (the sweeper
// reads it). Everything else of a session is touched only on its strand.

#include "server/http_engine.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <optional>
#include <map>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/server.hpp"

namespace pagekeeper::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

// A fixed-size pool of threads running jobs in FIFO order. Locking: mutex_ guards jobs_ and
// stopping_; cv_ wakes workers.
class WorkerPool {
 public:
  // Throws ServerError when a thread cannot be created (the ones created are joined).
  void start(std::size_t threads) {
    try {
      for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
    } catch (const std::system_error& e) {
      stop();
      throw ServerError("cannot start " + std::to_string(threads) + " worker threads: " + e.what());
    }
  }
  void submit(std::function<void()> job) {
    {
      MutexLock lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // Lets running jobs finish, drops queued ones, joins the threads.
  void stop() {
    std::deque<std::function<void()>> dropped;
    {
      MutexLock lock(mutex_);
      stopping_ = true;
      dropped.swap(jobs_);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void run() {
    while (true) {
      std::function<void()> job;
      {
        MutexLock lock(mutex_);
        cv_.wait(lock, [this] {
          mutex_.assert_held();
          return stopping_ || !jobs_.empty();
        });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      // A job answers its own handler's exceptions; what escapes it (an allocation failing
      // while it posts the answer) costs that one answer, never the process.
      try {
        job();
      } catch (const std::exception& e) {
        spdlog::error("pagekeeperd: a request was dropped: {}", e.what());
      } catch (...) {
        spdlog::error("pagekeeperd: a request was dropped");
      }
    }
  }

  Mutex mutex_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ PAGEKEEPER_GUARDED_BY(mutex_);
  bool stopping_ PAGEKEEPER_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

// A handler's header must not split the answer (CR, LF, NUL) or be no token.
bool safe_header_name(std::string_view name) {
  // ASCII by hand: std::isalnum consults the locale for every byte of every answer.
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}
bool safe_header_value(std::string_view value) { return value.find_first_of("\r\n", 0, 3) == std::string_view::npos; }

bool owned_by_engine(std::string_view name) {
  return equal_ignoring_case(name, "Content-Length") || equal_ignoring_case(name, "Transfer-Encoding") ||
         equal_ignoring_case(name, "Connection") || equal_ignoring_case(name, "Content-Type") ||
         equal_ignoring_case(name, "Date") || equal_ignoring_case(name, "Keep-Alive");
}

}  // namespace

class Session;

struct HttpEngine::State {
  HttpEngineOptions options;
  Handler handler;
  Refusal refuse;
  InlineHandler answer_inline;

  // Declared before the io_context: sessions its pending handlers own deregister on
  // destruction, which may happen when the io_context is destroyed.
  Mutex sessions_mutex;
  CondVar sessions_cv;  // notified when a session ends
  std::map<Session*, std::weak_ptr<Session>> sessions PAGEKEEPER_GUARDED_BY(sessions_mutex);
  bool draining PAGEKEEPER_GUARDED_BY(sessions_mutex) = false;

  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_pause;  // after a failed accept
  std::vector<std::thread> io_threads;
  WorkerPool workers;
  bool started = false;

  // Checks every connection's deadline each sweep_interval; on the sweeper's own strand.
  std::optional<net::steady_timer> sweeper;
  bool sweeping = false;  // touched on the sweeper's strand once threads run
  std::chrono::milliseconds sweep_interval{100};
  void sweep();

  void accept();
  void refuse_connection(tcp::socket socket);
  // Calls close_when_idle(force) on every live session.
  void close_sessions(bool force);
};

// One connection. Owned by the shared_ptrs its pending operations hold.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpEngine::State& engine, tcp::socket socket)
      : engine_(engine), socket_(std::move(socket)), buffer_(engine.options.max_header_bytes + kReadChunk) {}
  ~Session() {
    MutexLock lock(engine_.sessions_mutex);
    engine_.sessions.erase(this);
    engine_.sessions_cv.notify_all();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    beast::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);  // the answer goes out whole at once
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->wait_for_request(); });
  }
  // From stop(): closes the connection unless a request is being handled or answered (that
  // one closes after its answer). `force` closes it in any case.
  void close_when_idle(bool force) {
    net::post(socket_.get_executor(), [self = shared_from_this(), force] {
      self->draining_ = true;
      if (force || !self->busy_) self->close();
    });
  }
  // From the sweeper (holding sessions_mutex, so the session is alive): whether the current
  // step's deadline has passed.
  bool overdue(std::int64_t now_ns) const {
    const std::int64_t deadline = deadline_ns_.load(std::memory_order_relaxed);
    return deadline != 0 && deadline <= now_ns;
  }
  // Ends the current step if its deadline has passed (re-checked on the strand, where steps
  // change): a request still arriving is cancelled and answered 408, an idle connection or
  // a stalled write is closed.
  void expire() {
    net::post(socket_.get_executor(), [self = shared_from_this()] {
      if (!self->overdue(now_ns())) return;
      self->deadline_ns_.store(0, std::memory_order_relaxed);
      if (self->step_ == Step::kHeader || self->step_ == Step::kBody) {
        self->timed_out_ = true;
        beast::error_code ignored;
        self->socket_.cancel(ignored);
      } else {
        self->close();
      }
    });
  }

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  static constexpr std::size_t kReadChunk = 16 * 1024;

  const HttpEngineOptions& options() const { return engine_.options; }

  void wait_for_request() {
    busy_ = false;
    if (draining_) return close();
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    // Idle connections keep no buffer: only a busy connection's memory is its buffer.
    if (buffer_.capacity() > kReadChunk) buffer_.shrink_to_fit();
    arm(Step::kIdle, options().idle_timeout);
    socket_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->disarm();
      if (ec) return self->close();
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  // Deadlines are kept as a time the sweeper (HttpEngine::State::sweep) compares, not as a
  // timer per operation: arming one costs a store, not a timer queue update and a
  // cancellation handler per read and write.
  enum class Step { kIdle, kHeader, kBody, kWrite };
  void arm(Step step, std::chrono::milliseconds timeout) {
    step_ = step;
    timed_out_ = false;
    deadline_ns_.store(now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count(),
                       std::memory_order_relaxed);
  }
  void disarm() { deadline_ns_.store(0, std::memory_order_relaxed); }

  // Feeds the parser what is buffered. True when the header (or, with `whole_message`, the
  // whole request) is complete; false with `ec` clear when more bytes are needed, or with
  // `ec` set when the bytes are refused. Most requests arrive in one read, so this spares
  // them the asynchronous read operations and their trips through the scheduler.
  bool parse_buffered(bool whole_message, beast::error_code& ec) {
    ec = {};
    while (!(whole_message ? parser_->is_done() : parser_->is_header_done())) {
      if (buffer_.size() == 0) return false;
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        return false;
      }
      if (ec) return false;
    }
    return true;
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().max_header_bytes));
    parser_->body_limit(options().max_body_bytes);
    timed_out_ = false;
    beast::error_code ec;
    if (parse_buffered(false, ec) || ec) return on_header(ec);
    arm(Step::kHeader, options().header_timeout);
    http::async_read_header(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->disarm();
      self->on_header(ec);
    });
  }

  void on_header(beast::error_code ec) {
    if (timed_out_)
      return refuse(408, "request_timeout",
                    "the request header did not arrive within server.read_timeout_ms (" +
                        std::to_string(options().header_timeout.count()) + " ms)");
    if (ec) return refuse_framing(ec);
    const auto& msg = parser_->get();
    std::size_t fields = 0;
    for (auto it = msg.begin(); it != msg.end(); ++it) ++fields;
    if (fields > options().max_header_fields)
      return refuse(431, "header_too_large",
                    "the request has " + std::to_string(fields) + " header fields; at most " +
                        std::to_string(options().max_header_fields) + " are accepted");
    if (msg.target().size() > options().max_target_bytes)
      return refuse(414, "uri_too_long",
                    "the request target is " + std::to_string(msg.target().size()) + " bytes; at most " +
                        std::to_string(options().max_target_bytes) + " are accepted");
    if (msg.count(http::field::content_length) > 1 ||
        msg[http::field::content_length].find(',') != beast::string_view::npos)
      return refuse(400, "bad_request", "the request has more than one Content-Length");
    if (msg.count(http::field::transfer_encoding) > 0 && !parser_->chunked())
      return refuse(400, "bad_request", "Transfer-Encoding other than chunked is not accepted");
    if (parser_->chunked() && !beast::iequals(msg[http::field::transfer_encoding], "chunked"))
      return refuse(400, "bad_request", "Transfer-Encoding other than chunked is not accepted");
    if (const auto encoding = msg[http::field::content_encoding];
        !encoding.empty() && !beast::iequals(encoding, "identity"))
      return refuse(415, "unsupported_content_encoding",
                    "Content-Encoding '" + std::string(encoding.substr(0, 64)) +
                        "' is not accepted; send the body uncompressed");
    if (beast::iequals(msg[http::field::expect], "100-continue") && !parser_->is_done()) {
      // Clients that ask (curl does for bodies over 1 KiB) wait for this before the body.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      arm(Step::kWrite, options().write_timeout);
      net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code wec, std::size_t) {
                         self->disarm();
                         if (wec) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    beast::error_code ec;
    if (parse_buffered(true, ec)) return on_request();
    if (ec) return refuse_framing(ec);
    arm(Step::kBody, options().body_timeout);
    http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->disarm();
      if (self->timed_out_)
        return self->refuse(408, "request_timeout",
                            "the request body did not arrive within server.read_timeout_ms (" +
                                std::to_string(self->options().body_timeout.count()) + " ms)");
      if (ec) return self->refuse_framing(ec);
      self->on_request();
    });
  }

  // A read failed: answer what can be answered, close the connection.
  void refuse_framing(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return close();  // the peer left, or took too long (the stream is closed then)
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return refuse(431, "header_too_large",
                    "the request header exceeds limits (" + std::to_string(options().max_header_bytes) + " bytes)");
    if (ec == http::error::body_limit)
      return refuse(413, "limit_exceeded",
                    "request body exceeds limits.max_body_bytes (" + std::to_string(options().max_body_bytes) +
                        " bytes)");
    if (ec == http::error::partial_message)  // the peer half-closed inside a request
      return refuse(400, "bad_request", "the request ended before its header or body was complete");
    refuse(400, "bad_request",
           "malformed HTTP request: the request line, a header or the body framing could not be read (" +
               ec.message() + ")");
  }

  void refuse(int status, std::string_view code, const std::string& message) {
    HttpResponse res;
    engine_.refuse(status, code, message, res);
    keep_alive_ = false;
    write(std::move(res));
  }

  void on_request() {
    busy_ = true;
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;
    // On the stack: a request answered inline (most of them) needs no shared copy.
    HttpRequest request;
    request.method = std::string(msg.method_string());
    request.target = std::string(msg.target());
    std::size_t fields = 0;
    for (auto it = msg.begin(); it != msg.end(); ++it) ++fields;
    request.headers.reserve(fields);
    for (const auto& f : msg) request.headers.add(std::string(f.name_string()), std::string(f.value()));
    request.body = std::move(msg.body());
    parser_.reset();
    if (!request.split_target())
      return refuse(400, "bad_request", "the request target is not a path, or holds a malformed %-escape");
    if (engine_.answer_inline) {
      HttpResponse res;
      bool answered = false;
      try {
        answered = engine_.answer_inline(request, res);
      } catch (...) {
        answered = false;
      }
      if (answered) return write(std::move(res));
    }
    auto req = std::make_shared<HttpRequest>(std::move(request));
    engine_.workers.submit([self = shared_from_this(), req] {
      HttpResponse res;
      try {
        self->engine_.handler(*req, res);
      } catch (...) {
        res = HttpResponse{};
        self->engine_.refuse(500, "internal_error", "internal error while handling the request", res);
      }
      net::post(self->socket_.get_executor(),
                [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
    });
  }

  // The answer as one header block and the body, written together (one writev).
  void write(HttpResponse&& res) {
    busy_ = true;
    const bool keep_alive = keep_alive_ && !draining_;
    std::string& head = response_head_;
    head.clear();
    head += "HTTP/1.1 ";
    head += std::to_string(res.status);
    head += ' ';
    const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(res.status));
    head.append(reason.data(), reason.size());
    head += "\r\n";
    auto field = [&head](std::string_view name, std::string_view value) {
      head.append(name);
      head += ": ";
      head.append(value);
      head += "\r\n";
    };
    if (!res.content_type.empty() && safe_header_value(res.content_type)) field("Content-Type", res.content_type);
    field("Content-Length", std::to_string(res.body.size()));
    if (!keep_alive) field("Connection", "close");
    for (const auto& [name, value] : res.headers)
      if (!owned_by_engine(name) && safe_header_name(name) && safe_header_value(value)) field(name, value);
    head += "\r\n";
    response_body_ = head_ ? std::string() : std::move(res.body);
    const std::array<net::const_buffer, 2> buffers{net::buffer(response_head_), net::buffer(response_body_)};
    arm(Step::kWrite, options().write_timeout);
    net::async_write(socket_, buffers, [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
      self->disarm();
      if (ec || !keep_alive) return self->close();
      self->wait_for_request();
    });
  }

  void close() {
    busy_ = false;
    disarm();
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  HttpEngine::State& engine_;
  tcp::socket socket_;  // on the session's strand
  std::atomic<std::int64_t> deadline_ns_{0};  // steady-clock ns; 0: none
  Step step_ = Step::kIdle;
  bool timed_out_ = false;
  std::string response_head_;  // the answer being written
  std::string response_body_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool busy_ = false;      // a request is being handled or answered
  bool draining_ = false;  // stop() was called: close after the answer in progress
};

void HttpEngine::State::close_sessions(bool force) {
  std::vector<std::shared_ptr<Session>> live;
  {
    MutexLock lock(sessions_mutex);
    draining = true;
    for (const auto& [_, weak] : sessions)
      if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  for (const auto& session : live) session->close_when_idle(force);
}

void HttpEngine::State::sweep() {
  sweeper->expires_after(sweep_interval);
  sweeper->async_wait([this](beast::error_code ec) {
    if (ec || !sweeping) return;
    const std::int64_t now = Session::now_ns();
    std::vector<std::shared_ptr<Session>> overdue;
    {
      // Holding the mutex keeps every listed session alive (its destructor deregisters first).
      MutexLock lock(sessions_mutex);
      for (const auto& [raw, weak] : sessions)
        if (raw->overdue(now))
          if (auto session = weak.lock()) overdue.push_back(std::move(session));
    }
    for (const auto& session : overdue) session->expire();
    sweep();
  });
}

void HttpEngine::State::accept() {
  // A connection's steps run on its strand; with one I/O thread they are serial anyway, and
  // the strand would only add its queueing to every step of every request.
  const net::any_io_executor executor = options.io_threads <= 1
                                            ? net::any_io_executor(io.get_executor())
                                            : net::any_io_executor(net::make_strand(io));
  acceptor->async_accept(executor, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;  // stop()
    if (!ec) {
      bool admit = false;
      {
        MutexLock lock(sessions_mutex);
        admit = !draining && sessions.size() < options.max_connections;
      }
      if (!admit) {
        refuse_connection(std::move(socket));
      } else {
        auto session = std::make_shared<Session>(*this, std::move(socket));
        {
          // Only this handler adds sessions (one accept at a time), so the count checked
          // above still holds.
          MutexLock lock(sessions_mutex);
          sessions.emplace(session.get(), session);
        }
        session->start();
      }
    } else {
      // Out of descriptors (EMFILE) and the like: the listening socket stays; accept again
      // after a pause, so a full table is not spun on.
      spdlog::warn("pagekeeperd: accept failed: {}", ec.message());
      accept_pause->expires_after(std::chrono::milliseconds(100));
      accept_pause->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) accept();
      });
      return;
    }
    accept();
  });
}

// Past max_connections: a fixed 503 with Retry-After, then close. The answer is small enough
// for the socket's send buffer, so one non-blocking write suffices.
void HttpEngine::State::refuse_connection(tcp::socket socket) {
  HttpResponse res;
  refuse(503, "too_many_connections",
         "the server has " + std::to_string(options.max_connections) +
             " connections open (server.max_connections); retry shortly",
         res);
  std::string bytes = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: " +
                      res.content_type + "\r\nContent-Length: " + std::to_string(res.body.size()) + "\r\n\r\n" +
                      res.body;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.send(net::buffer(bytes), 0, ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

namespace {

// Runs the io_context until it runs out of work. An exception from a step (an allocation
// failing while a request is read) ends that step, and with it its connection, whose
// session is released with the step; the thread goes on serving the others. Escaping the
// thread would call std::terminate.
void run_io(net::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("pagekeeperd: a connection was closed: {}", e.what());
    } catch (...) {
      spdlog::error("pagekeeperd: a connection was closed");
    }
  }
}

}  // namespace

HttpEngine::HttpEngine(HttpEngineOptions options, Handler handler, Refusal refuse, InlineHandler answer_inline)
    : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->handler = std::move(handler);
  state_->refuse = std::move(refuse);
  state_->answer_inline = std::move(answer_inline);
}

HttpEngine::~HttpEngine() { stop(); }

int HttpEngine::start() {
  State& s = *state_;
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  const auto resolved = resolver.resolve(s.options.host, std::to_string(s.options.port),
                                         tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || resolved.empty())
    throw ServerError("cannot bind " + s.options.host + ":" + std::to_string(s.options.port) +
                      " (the host does not resolve: " + ec.message() + ")");
  const tcp::endpoint endpoint = resolved.begin()->endpoint();
  // The acceptor, its pause timer and stop()'s close share one strand.
  const auto accept_strand = net::make_strand(s.io);
  s.acceptor.emplace(accept_strand);
  s.accept_pause.emplace(accept_strand);
  s.acceptor->open(endpoint.protocol(), ec);
  // SO_REUSEADDR (a restart binds while old connections sit in TIME_WAIT), never SO_REUSEPORT:
  // a second daemon on the same port must fail, not share its traffic.
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw ServerError("cannot bind " + s.options.host + ":" + std::to_string(s.options.port) + " (" + ec.message() +
                      ")");
  const int port = s.acceptor->local_endpoint().port();
  s.workers.start(s.options.worker_threads);
  s.work.emplace(s.io.get_executor());
  // A deadline is noticed within an eighth of the shortest timeout (5 ms to 250 ms late).
  const auto shortest = std::min({s.options.header_timeout, s.options.body_timeout, s.options.idle_timeout,
                                  s.options.write_timeout});
  s.sweep_interval = std::clamp(shortest / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
  s.sweeper.emplace(net::make_strand(s.io));
  s.sweeping = true;
  s.sweep();
  s.accept();
  try {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, s.options.io_threads); ++i)
      s.io_threads.emplace_back([&s] { run_io(s.io); });
  } catch (const std::system_error& e) {
    s.started = true;
    stop();
    throw ServerError(std::string("cannot start the I/O threads: ") + e.what());
  }
  s.started = true;
  return port;
}

void HttpEngine::stop() {
  State& s = *state_;
  if (!s.started) return;
  s.started = false;
  // Stop accepting.
  net::post(s.acceptor->get_executor(), [&s] {
    beast::error_code ignored;
    s.acceptor->close(ignored);
    s.accept_pause->cancel();
  });
  // Close idle connections now; busy ones close after their answer, within drain_timeout.
  s.close_sessions(false);
  {
    MutexLock lock(s.sessions_mutex);
    s.sessions_cv.wait_for(lock, s.options.drain_timeout, [&s] {
      s.sessions_mutex.assert_held();
      return s.sessions.empty();
    });
  }
  net::post(s.sweeper->get_executor(), [&s] {
    s.sweeping = false;
    s.sweeper->cancel();
  });
  s.close_sessions(true);
  // With every socket closed, the io threads run out of work and return; an answer a worker
  // posts after that is dropped with the io_context.
  s.work.reset();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.workers.stop();
}

std::size_t HttpEngine::connections() const {
  MutexLock lock(state_->sessions_mutex);
  return state_->sessions.size();
}

}  // namespace pagekeeper::server
