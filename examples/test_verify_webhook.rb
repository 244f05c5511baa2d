# frozen_string_literal: true

# ruby examples/test_verify_webhook.rb
#
# Every positive vector of docs/test-vectors.json must verify (either secret of a rotation, each
# header family alone and both together) and every negative one must be refused with its reason,
# directly and through the Rack handler (a hand-built env: no rack gem needed). The last line
# printed counts the vectors checked.

require "minitest/autorun"
require "json"
require "stringio"
require_relative "verify_webhook"

VECTORS = JSON.parse(File.read(File.join(__dir__, "..", "docs", "test-vectors.json"), encoding: "UTF-8"))
STANDARD = %w[webhook-id webhook-timestamp webhook-signature].freeze
CONTINUUM = %w[x-continuum-timestamp x-continuum-signature].freeze
OTHER_SECRET = "whsec_#{'A' * 43}="
COUNTS = { positive: 0, negative: 0 }

Minitest.after_run do
  puts "continuum test vectors [ruby]: #{COUNTS[:positive]} positive accepted, #{COUNTS[:negative]} negative rejected"
end

def without(headers, names)
  headers.reject { |k, _| names.include?(k.downcase) }
end

def reason_of
  yield
  "accepted"
rescue ContinuumWebhooks::VerificationError => e
  e.reason
end

class VectorTest < Minitest::Test
  def test_accepts_every_positive_vector
    VECTORS["positive"].each do |v|
      secrets = [v["secret"], v["previous_secret"]].compact
      secrets.each do |secret|
        [without(v["headers"], STANDARD), without(v["headers"], CONTINUUM), v["headers"]].each do |headers|
          payload = ContinuumWebhooks.verify(body: v["body"], headers: headers, secret: secret, now: v["now"])
          assert_equal v["payload"], payload, "#{v['name']} (#{secret[0, 10]}, #{headers.keys.grep(/sig/i)})"
        end
      end
      # The receiver's own rotation: several secrets, one right.
      payload = ContinuumWebhooks.verify(body: v["body"], headers: v["headers"], secret: [OTHER_SECRET, v["secret"]],
                                         now: v["now"])
      assert_equal v["payload"], payload, v["name"]
      COUNTS[:positive] += 1
    end
  end

  def test_rejects_every_negative_vector_with_its_reason
    VECTORS["negative"].each do |v|
      reason = reason_of do
        ContinuumWebhooks.verify(body: v["body"], headers: v["headers"], secret: v["secret"], now: v["now"])
      end
      assert_equal v["reason"], reason, v["name"]
      COUNTS[:negative] += 1
    end
  end

  def test_refuses_a_missing_or_undecodable_secret
    v = VECTORS["positive"].first
    [[], "", "whsec_!!!"].each do |secret|
      assert_raises(ArgumentError) do
        ContinuumWebhooks.verify(body: v["body"], headers: v["headers"], secret: secret, now: v["now"])
      end
    end
  end

  def test_the_delivery_id_prefers_the_signed_webhook_id
    assert_equal "a", ContinuumWebhooks.delivery_id({ "Webhook-Id" => "a", "X-Continuum-Delivery" => "b" })
    assert_equal "b", ContinuumWebhooks.delivery_id({ "X-Continuum-Delivery" => "b" })
    assert_nil ContinuumWebhooks.delivery_id({})
  end
end

class DeduplicatorTest < Minitest::Test
  def test_claims_once_within_the_ttl_and_forgets_the_oldest_when_full
    d = ContinuumWebhooks::Deduplicator.new(ttl: 10, max_entries: 2)
    assert d.claim("a", now: 0)
    refute d.claim("a", now: 9)
    d.release("a")
    assert d.claim("a", now: 9)
    assert d.claim("b", now: 9)
    assert d.claim("c", now: 9) # full: "a" is forgotten
    refute d.claim("c", now: 9)
    assert d.claim("a", now: 9)
    assert d.claim("c", now: 19) # expired
  end
end

class RackHandlerTest < Minitest::Test
  def setup
    @events = []
    @fail_next = false
    @now = 0
    @handler = ContinuumWebhooks::RackHandler.new(secret: "unset", clock: -> { @now }) do |event, id|
      if @fail_next
        @fail_next = false
        raise "handler failed"
      end
      @events << [event, id]
    end
  end

  # What a Rack server builds from the request: HTTP_* headers, CONTENT_TYPE, rack.input.
  def env_for(headers, body, method: "POST")
    env = { "REQUEST_METHOD" => method, "PATH_INFO" => "/webhooks/continuum",
            "rack.input" => StringIO.new(body.b) }
    headers.each do |name, value|
      key = name.upcase.tr("-", "_")
      env[key == "CONTENT_TYPE" ? key : "HTTP_#{key}"] = value
    end
    env
  end

  def post(vector, headers = vector["headers"])
    @handler.secret = vector["secret"]
    @now = vector["now"]
    status, response_headers, body = @handler.call(env_for(headers, vector["body"]))
    assert_equal "application/json", response_headers["content-type"]
    [status, JSON.parse(body.join)]
  end

  def test_every_vector_through_the_handler
    VECTORS["positive"].each do |v|
      @events.clear
      @handler.instance_variable_set(:@dedupe, ContinuumWebhooks::Deduplicator.new)
      assert_equal [200, { "status" => "ok", "delivery_id" => v["delivery_id"] }], post(v), v["name"]
      assert_equal [[v["payload"], v["delivery_id"]]], @events, v["name"]
    end
    VECTORS["negative"].each do |v|
      status, body = post(v)
      assert_equal [400, v["reason"]], [status, body["reason"]], v["name"]
    end
  end

  def test_a_retry_is_processed_once_and_a_failure_lets_the_retry_through
    v = VECTORS["positive"].first
    @fail_next = true
    assert_raises(RuntimeError) { post(v) } # the server turns this into a 500
    assert_equal 200, post(v)[0]
    status, body = post(v, without(v["headers"], STANDARD)) # same id, other header family
    assert_equal [200, "duplicate"], [status, body["status"]]
    assert_equal 1, @events.size
  end

  def test_only_post
    status, headers, = @handler.call(env_for({}, "", method: "GET"))
    assert_equal [405, "POST"], [status, headers["allow"]]
  end
end
