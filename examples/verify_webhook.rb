# frozen_string_literal: true

# Verify CONTINUUM webhooks in Ruby: standard library only (openssl, json), plus a Rack handler
# that works in any Rack app, Sinatra and Rails included.
#
# Every delivery carries two signature header families; checking either one is enough:
# - X-Continuum-Signature: hex HMAC-SHA256 of "{timestamp}.{body}", keyed by the whole secret
#   string ("whsec_" included), with X-Continuum-Timestamp.
# - Standard Webhooks: webhook-signature is "v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>",
#   keyed by the base64-decoded part of the secret after "whsec_".
# During a secret rotation each header carries one signature per secret, space-separated.
#
# Usage in config.ru:
#
#   require_relative "verify_webhook"
#   handler = ContinuumWebhooks::RackHandler.new(secret: ENV.fetch("CONTINUUM_WEBHOOK_SECRET")) do |event, delivery_id|
#     puts "#{event['event']} #{delivery_id}"   # raise to answer 500: CONTINUUM retries
#   end
#   map("/webhooks/continuum") { run handler }
#
# In Sinatra:
#
#   post "/webhooks/continuum" do
#     status, headers, body = WEBHOOK_HANDLER.call(request.env)
#     [status, headers, body]
#   end

require "json"
require "openssl"

module ContinuumWebhooks
  # Deliveries whose timestamp is further than this from now (past or future) are refused: a
  # captured request can only be replayed within the window, and the timestamp is signed, so it
  # cannot be refreshed. Five minutes absorbs clock skew and slow networks.
  DEFAULT_TOLERANCE_SECONDS = 300

  TIMESTAMP = /\A[0-9]{1,15}\z/
  HEX_SIGNATURE = /\A[0-9a-fA-F]{64}\z/

  # Raised for a delivery that must be refused (answer 400). +reason+ is one of
  # "missing_header", "malformed", "expired", "bad_signature".
  class VerificationError < StandardError
    attr_reader :reason

    def initialize(reason, message)
      super(message)
      @reason = reason
    end
  end

  module_function

  # Verifies one delivery and returns its parsed payload (a Hash).
  #
  # body:    the raw request body, exactly as received (never a re-encoded JSON.parse result)
  # headers: a Hash of header name (any case) => value
  # secret:  one secret, or an Array of them while you rotate
  # now:     unix seconds to check against (tests); default the clock
  def verify(body:, headers:, secret:, tolerance: DEFAULT_TOLERANCE_SECONDS, now: nil)
    secrets = Array(secret)
    if secrets.empty? || secrets.any? { |s| !s.is_a?(String) || s.empty? }
      raise ArgumentError, "verify needs a non-empty secret"
    end

    h = {}
    headers.each do |name, value|
      next if value.nil? || value.to_s.empty?

      key = name.to_s.downcase
      h[key] = h.key?(key) ? "#{h[key]} #{value}" : value.to_s # a header sent twice: both count
    end

    # 1. Headers present. The Standard Webhooks family is used when its signature is there.
    standard = h.key?("webhook-signature")
    signature_header = standard ? h["webhook-signature"] : h["x-continuum-signature"]
    if signature_header.nil?
      raise VerificationError.new("missing_header", "no webhook-signature or X-Continuum-Signature header")
    end

    webhook_id = h["webhook-id"]
    raise VerificationError.new("missing_header", "missing webhook-id header") if standard && webhook_id.nil?

    timestamp = standard ? h["webhook-timestamp"] : h["x-continuum-timestamp"]
    raise VerificationError.new("missing_header", "missing timestamp header") if timestamp.nil?

    # 2. Well-formed.
    unless TIMESTAMP.match?(timestamp)
      raise VerificationError.new("malformed", "timestamp header is not unix seconds")
    end

    # A duplicated header joined with commas ("v1,a, v1,b") leaves a trailing comma on a token.
    tokens = signature_header.split.map { |t| t.delete_suffix(",") }
    raise VerificationError.new("malformed", "empty signature header") if tokens.empty?

    candidates = tokens.filter_map do |token|
      if standard
        version, signature = token.split(",", 2)
        if version.to_s.empty? || signature.to_s.empty?
          raise VerificationError.new("malformed", "webhook-signature is not 'v1,<base64>'")
        end

        signature if version == "v1" # other versions (v1a: asymmetric) are skipped, as the spec asks
      elsif HEX_SIGNATURE.match?(token)
        token.downcase
      else
        raise VerificationError.new("malformed", "X-Continuum-Signature is not hex HMAC-SHA256")
      end
    end

    # 3. Inside the replay window, both directions; exactly +tolerance+ away still passes.
    age = (now || Time.now.to_i).to_i - Integer(timestamp, 10)
    raise VerificationError.new("expired", "timestamp is #{age} s old") if age > tolerance
    raise VerificationError.new("expired", "timestamp is #{-age} s in the future") if -age > tolerance

    # 4. Signature: every candidate against every secret, no early exit.
    raw = body.to_s.b
    matched = false
    secrets.each do |s|
      expected =
        if standard
          digest = OpenSSL::HMAC.digest("SHA256", standard_key(s), "#{webhook_id}.#{timestamp}.".b + raw)
          [digest].pack("m0") # strict base64
        else
          OpenSSL::HMAC.hexdigest("SHA256", s, "#{timestamp}.".b + raw)
        end
      candidates.each { |candidate| matched = true if secure_compare(candidate, expected) }
    end
    raise VerificationError.new("bad_signature", "no signature matches the secret") unless matched

    # Only now is the body trusted enough to parse.
    begin
      JSON.parse(raw.dup.force_encoding(Encoding::UTF_8))
    rescue JSON::ParserError, EncodingError
      raise VerificationError.new("malformed", "body is not JSON")
    end
  end

  # Constant time: the comparison takes as long wherever two signatures differ, so response times
  # reveal nothing about how close a forgery came. (Lengths are public: every valid one is equal.)
  def secure_compare(a, b)
    a.bytesize == b.bytesize && OpenSSL.fixed_length_secure_compare(a, b)
  end

  def standard_key(secret)
    encoded = secret.delete_prefix("whsec_")
    # String#unpack1("m0"): strict base64 from core Ruby (the base64 gem is no default gem from 3.4).
    key = begin
      encoded.unpack1("m0")
    rescue ArgumentError
      ""
    end
    # Never an empty key: anyone could compute that HMAC.
    raise ArgumentError, "the webhook secret must be 'whsec_' followed by base64" if key.empty?

    key
  end

  # The delivery id, the de-duplication key: the same on every retry of a delivery. webhook-id is
  # preferred because the Standard Webhooks signature covers it; X-Continuum-Delivery is equal.
  def delivery_id(headers)
    h = headers.to_h { |k, v| [k.to_s.downcase, v] }
    [h["webhook-id"], h["x-continuum-delivery"]].find { |v| v && !v.empty? }
  end

  # Remembers delivery ids for +ttl+ seconds so a retried delivery is processed once. Delivery is
  # at-least-once: when your 200 is lost on the way back, the same delivery comes again.
  #
  # In memory and per process. With several processes (Puma workers, several hosts) or restarts use
  # shared storage: Redis (SET dedupe:<id> 1 NX EX 86400) or a UNIQUE column written in the same
  # transaction as your side effects.
  class Deduplicator
    def initialize(ttl: 24 * 3600, max_entries: 100_000)
      @ttl = ttl
      @max_entries = max_entries
      @seen = {} # id => expiry; a Hash keeps insertion order, oldest first
      @lock = Mutex.new
    end

    # true the first time an id is seen (process it), false for a duplicate (skip it).
    def claim(id, now: Process.clock_gettime(Process::CLOCK_MONOTONIC))
      @lock.synchronize do
        @seen.shift while !@seen.empty? && @seen.first[1] <= now # expired
        return false if @seen.key?(id)

        @seen.shift if @seen.size >= @max_entries # full: forget the oldest
        @seen[id] = now + @ttl
        true
      end
    end

    # Forgets an id whose processing failed, so the sender's retry is processed.
    def release(id)
      @lock.synchronize { @seen.delete(id) }
    end
  end

  # A Rack application: call(env) => [status, headers, body]. Verifies the raw body, de-duplicates,
  # yields (event, delivery_id) to the block, answers 200. A refused delivery gets 400 with the
  # reason; an exception in the block releases the id and propagates (your server answers 500, and
  # CONTINUUM retries). Keep the block fast: CONTINUUM times out after 30 s; queue slow work
  # (Sidekiq, ActiveJob) and return.
  class RackHandler
    JSON_HEADERS = { "content-type" => "application/json" }.freeze

    def initialize(secret:, dedupe: Deduplicator.new, tolerance: DEFAULT_TOLERANCE_SECONDS, clock: nil, &on_event)
      raise ArgumentError, "RackHandler needs a block to handle events" unless on_event

      @secret = secret
      @dedupe = dedupe
      @tolerance = tolerance
      @clock = clock # a lambda returning unix seconds, for tests
      @on_event = on_event
    end

    attr_accessor :secret

    def call(env)
      return reply(405, { error: "method_not_allowed" }, "allow" => "POST") unless env["REQUEST_METHOD"] == "POST"

      headers = self.class.headers_from(env)
      input = env["rack.input"]
      input.rewind if input.respond_to?(:rewind) # a middleware may have read it already
      body = input ? input.read.to_s : "" # the raw bytes: the signature covers exactly these
      begin
        event = ContinuumWebhooks.verify(body: body, headers: headers, secret: @secret,
                                         tolerance: @tolerance, now: @clock&.call)
      rescue VerificationError => e
        return reply(400, { error: "invalid_signature", reason: e.reason, detail: e.message })
      end

      id = ContinuumWebhooks.delivery_id(headers)
      return reply(200, { status: "duplicate", delivery_id: id }) if id && @dedupe && !@dedupe.claim(id)

      begin
        @on_event.call(event, id)
      rescue StandardError
        @dedupe&.release(id) if id
        raise
      end
      reply(200, { status: "ok", delivery_id: id })
    end

    # Rack puts request headers in env as HTTP_WEBHOOK_SIGNATURE etc. (CONTENT_TYPE without HTTP_).
    def self.headers_from(env)
      env.each_with_object({}) do |(key, value), out|
        out[key.delete_prefix("HTTP_").tr("_", "-").downcase] = value if key.start_with?("HTTP_")
      end
    end

    private

    def reply(status, payload, extra_headers = {})
      [status, JSON_HEADERS.merge(extra_headers), [JSON.generate(payload)]]
    end
  end
end
