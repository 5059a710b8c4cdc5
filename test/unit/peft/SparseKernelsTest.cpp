// Reference kernels of sparse fine-tuning's ops against values worked out
// by hand, in both index layouts, and the index errors the reference
// reports (the generated kernels cannot).
#include "PeftTestUtil.h"

namespace peft::test {
namespace {

class SparseKernels : public PeftEvalTest {
protected:
  void parseOps(bool transposed) {
    std::string attrs = transposed ? " {transposed}" : "";
    parse(R"(
func.func @delta(%w: tensor<2x3xf64>, %i: tensor<3xi64>, %v: tensor<3xf64>) -> tensor<2x3xf64> {
  %y = peft.sparse_delta %w, %i, %v)" +
          attrs + R"( : tensor<2x3xf64>, tensor<3xi64>, tensor<3xf64>
  return %y : tensor<2x3xf64>
}
func.func @gather(%x: tensor<2x3xf64>, %i: tensor<3xi64>) -> tensor<3xf64> {
  %y = peft.sparse_gather %x, %i)" +
          attrs + R"( : tensor<2x3xf64>, tensor<3xi64> -> tensor<3xf64>
  return %y : tensor<3xf64>
})");
  }

  Tensor w = f64({2, 3}, {1, 2, 3, 4, 5, 6});
};

// Positions 0, 2, 5 of the [2, 3] weight itself: elements (0,0), (0,2),
// (1,2).
TEST_F(SparseKernels, DeltaAndGatherInTheStoredLayout) {
  parseOps(false);
  Tensor indices = i64({3}, {0, 2, 5});
  expectNear(runOk({w, indices, f64({3}, {0.5, -1, 10})}, "delta")[0],
             {1.5, 2, 2, 4, 5, 16});
  expectNear(runOk({w, indices}, "gather")[0], {1, 3, 6});
}

// `transposed`: positions in the [3, 2] transpose, p -> w[p mod 2, p div 2]:
// 0 -> (0,0), 3 -> (1,1), 4 -> (0,2).
TEST_F(SparseKernels, DeltaAndGatherInTheTransposedLayout) {
  parseOps(true);
  Tensor indices = i64({3}, {0, 3, 4});
  expectNear(runOk({w, indices, f64({3}, {0.5, -1, 10})}, "delta")[0],
             {1.5, 2, 13, 4, 4, 6});
  expectNear(runOk({w, indices}, "gather")[0], {1, 5, 3});
}

TEST_F(SparseKernels, IndicesMustIncreaseAndStayInRange) {
  parseOps(false);
  EXPECT_TRUE(
      failed(run({w, i64({3}, {0, 2, 2}), f64({3}, {1, 1, 1})}, "delta")));
  EXPECT_NE(errors.find("peft.sparse_delta: indices must be strictly "
                        "increasing; index 2 is 2 after 2"),
            std::string::npos)
      << errors;
  EXPECT_TRUE(failed(run({w, i64({3}, {0, 2, 6})}, "gather")));
  EXPECT_NE(errors.find("peft.sparse_gather: index 2 is 6, outside [0, 6)"),
            std::string::npos)
      << errors;
}

} // namespace
} // namespace peft::test
